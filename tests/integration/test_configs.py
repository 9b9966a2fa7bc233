#!/usr/bin/python3
"""Topic and broker configuration over the Kafka API against a real stratad:
DescribeConfigs, AlterConfigs, IncrementalAlterConfigs, CreateTopics with
configs, CreatePartitions. Clients: confluent-kafka's AdminClient, kcat, and
raw frames where confluent-kafka 1.7 has no call (IncrementalAlterConfigs,
DescribeConfigs v3 documentation)."""
import os
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker  # noqa: E402
import kwire  # noqa: E402
from kwire import Reader, uvarint  # noqa: E402

import confluent_kafka  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import (AdminClient, ConfigResource, ConfigSource,  # noqa: E402
                                   NewPartitions, NewTopic)

INVALID_CONFIG = 40
INVALID_REQUEST = 42


def kcat(*args, input=None, timeout=60):
    p = subprocess.run(["kcat", *args], input=input, capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


# ---- Raw frames (request header v1, non-flexible versions) ----

def s16(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def call(port, api, ver, body, corr=7):
    hdr = struct.pack(">hhi", api, ver, corr) + s16("it-raw")
    frame = struct.pack(">i", len(hdr) + len(body)) + hdr + body
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(frame)
        data = kwire.recv_frame(s)
    r = Reader(data, 4)
    assert r.take(">i") == corr
    return r


def cstr(s):
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


def call_flexible(port, api, ver, body, corr=9):
    hdr = struct.pack(">hhi", api, ver, corr) + s16("it-raw") + uvarint(0)
    frame = struct.pack(">i", len(hdr) + len(body)) + hdr + body
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(frame)
        data = kwire.recv_frame(s)
    r = Reader(data, 4)
    assert r.take(">i") == corr
    r.tags()
    return r


def create_topic_v5(port, name, configs, validate_only=False):
    """CreateTopics v5 (flexible) -> (error, message, {config: (value, source)} or None)"""
    body = uvarint(2) + cstr(name) + struct.pack(">ih", 1, -1) + uvarint(1)
    body += uvarint(len(configs) + 1)
    for k, v in configs.items():
        body += cstr(k) + cstr(v) + uvarint(0)
    body += uvarint(0) + struct.pack(">i?", 30000, validate_only) + uvarint(0)
    r = call_flexible(port, 19, 5, body)
    r.take(">i")
    assert r.uvarint() == 2
    r.cstr()
    code, msg = r.take(">h"), r.cstr()
    r.take(">i")
    r.take(">h")
    n = r.uvarint() - 1
    out = None
    if n >= 0:
        out = {}
        for _ in range(n):
            k, v = r.cstr(), r.cstr()
            _ro, src, _sens = r.take(">?"), r.take(">b"), r.take(">?")
            r.tags()
            out[k] = (v, src)
    return code, msg, out


def incremental_alter(port, resources, validate_only=False):
    """resources: [(type, name, [(key, op, value)])] -> [(code, message, name)]"""
    body = struct.pack(">i", len(resources))
    for rtype, name, ops in resources:
        body += struct.pack(">b", rtype) + s16(name) + struct.pack(">i", len(ops))
        for key, op, value in ops:
            body += s16(key) + struct.pack(">b", op) + s16(value)
    body += struct.pack(">?", validate_only)
    r = call(port, 44, 0, body)
    r.take(">i")  # throttle
    out = []
    for _ in range(r.take(">i")):
        code = r.take(">h")
        msg = r.str16()
        r.take(">b")
        out.append((code, msg, r.str16()))
    return out


def describe_v3(port, rtype, name, keys=None, synonyms=True, docs=True):
    """DescribeConfigs v3 -> (error, {name: (value, source, read_only, type, doc, synonyms)})"""
    body = struct.pack(">i", 1) + struct.pack(">b", rtype) + s16(name)
    if keys is None:
        body += struct.pack(">i", -1)
    else:
        body += struct.pack(">i", len(keys)) + b"".join(s16(k) for k in keys)
    body += struct.pack(">??", synonyms, docs)
    r = call(port, 32, 3, body)
    r.take(">i")
    assert r.take(">i") == 1
    code, msg = r.take(">h"), r.str16()
    r.take(">b")
    r.str16()
    out = {}
    for _ in range(r.take(">i")):
        key, value = r.str16(), r.str16()
        ro, src, _sens = r.take(">?"), r.take(">b"), r.take(">?")
        syns = []
        for _ in range(r.take(">i")):
            syns.append((r.str16(), r.str16(), r.take(">b")))
        ctype, doc = r.take(">b"), r.str16()
        out[key] = (value, src, ro, ctype, doc, syns)
    return (code, msg), out


class ConfigsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Retention is checked often so a live change shows quickly; a broker
        # key set away from its default shows as a static broker config.
        cls.b = Broker("--set", "log.retention.check.interval.ms=200",
                       "--set", "log.retention.ms=86400000")
        cls.a = AdminClient({"bootstrap.servers": cls.b.bootstrap})

    @classmethod
    def tearDownClass(cls):
        rc, out = cls.b.stop()
        cls.b.close()
        assert rc == 0, out

    def create(self, name, partitions=1, **config):
        self.a.create_topics([NewTopic(name, partitions, 1, config=config)])[name].result(30)

    def describe(self, rtype, name):
        res = ConfigResource(rtype, name)
        return self.a.describe_configs([res])[res].result(30)

    def assert_refused(self, fut, code, *needles):
        with self.assertRaises(confluent_kafka.KafkaException) as cm:
            fut.result(30)
        err = cm.exception.args[0]
        self.assertEqual(err.code(), code, err)
        for n in needles:
            self.assertIn(n, err.str())

    # ---- DescribeConfigs ----

    def test_describe_topic_values_sources_synonyms(self):
        self.create("dc1", 1, **{"retention.bytes": "1048576"})
        d = self.describe("topic", "dc1")
        for key in ("cleanup.policy", "compression.type", "retention.ms", "retention.bytes",
                    "segment.bytes", "segment.ms", "segment.index.bytes",
                    "index.interval.bytes", "max.message.bytes", "message.timestamp.type",
                    "min.insync.replicas", "file.delete.delay.ms", "flush.messages",
                    "flush.ms", "unclean.leader.election.enable",
                    "message.downconversion.enable", "remote.storage.enable",
                    "local.retention.ms", "local.retention.bytes", "write.caching"):
            self.assertIn(key, d)
        # Topic override.
        e = d["retention.bytes"]
        self.assertEqual(e.value, "1048576")
        self.assertEqual(e.source, ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
        self.assertFalse(e.is_default)
        self.assertIn("log.retention.bytes", e.synonyms)
        # Broker value set away from the default: the topic inherits it.
        e = d["retention.ms"]
        self.assertEqual(e.value, "86400000")
        self.assertEqual(e.source, ConfigSource.STATIC_BROKER_CONFIG.value)
        self.assertIn("log.retention.ms", e.synonyms)
        # Plain defaults.
        e = d["segment.bytes"]
        self.assertEqual(e.value, "1073741824")
        self.assertEqual(e.source, ConfigSource.DEFAULT_CONFIG.value)
        self.assertTrue(e.is_default)
        self.assertEqual(d["cleanup.policy"].value, "delete")
        self.assertEqual(d["max.message.bytes"].synonyms["message.max.bytes"].value, "1048588")
        # Unknown topic.
        res = ConfigResource("topic", "no-such-topic")
        self.assert_refused(self.a.describe_configs([res])[res],
                            confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART)

    def test_describe_broker(self):
        d = self.describe("broker", "0")
        self.assertEqual(d["log.retention.ms"].value, "86400000")
        self.assertEqual(d["log.retention.ms"].source, ConfigSource.STATIC_BROKER_CONFIG.value)
        self.assertEqual(d["log.segment.bytes"].value, "1073741824")
        self.assertEqual(d["log.segment.bytes"].source, ConfigSource.DEFAULT_CONFIG.value)
        self.assertEqual(d["num.partitions"].value, "1")
        self.assertTrue(d["node.id"].is_read_only)
        # librdkafka sends a broker resource to that broker: use a raw frame.
        (code, msg), _ = describe_v3(self.b.port, 4, "7")
        self.assertEqual(code, INVALID_REQUEST)
        self.assertIn("Unexpected broker id", msg)

    def test_describe_v3_types_documentation_key_filter(self):
        self.create("dc3", 1, **{"segment.ms": "3600000"})
        (code, _), d = describe_v3(self.b.port, 2, "dc3", keys=["segment.ms", "write.caching",
                                                                "no.such.key"])
        self.assertEqual(code, 0)
        self.assertEqual(sorted(d), ["segment.ms", "write.caching"])
        value, src, ro, ctype, doc, syns = d["segment.ms"]
        self.assertEqual((value, src, ro, ctype), ("3600000", 1, False, 5))  # LONG
        self.assertIn("Roll", doc)
        self.assertEqual(syns[0], ("segment.ms", "3600000", 1))
        self.assertEqual(syns[-1], ("log.roll.ms", "604800000", 5))
        self.assertEqual(d["write.caching"][3], 1)  # BOOLEAN
        # Without documentation requested, none is sent.
        _, d = describe_v3(self.b.port, 2, "dc3", keys=["segment.ms"], synonyms=False,
                           docs=False)
        self.assertIsNone(d["segment.ms"][4])
        self.assertEqual(d["segment.ms"][5], [])
        (code, _), d = describe_v3(self.b.port, 4, "", keys=["message.max.bytes"])
        self.assertEqual(code, 0)
        self.assertEqual(d["message.max.bytes"][0], "1048588")

    # ---- CreateTopics with configs ----

    def test_create_topics_with_configs_validated(self):
        self.create("ct1", 2, **{"cleanup.policy": "delete", "retention.ms": "-1",
                                 "write.caching": "TRUE", "compression.type": "producer"})
        d = self.describe("topic", "ct1")
        self.assertEqual(d["retention.ms"].value, "-1")
        self.assertEqual(d["write.caching"].value, "true")
        self.assertEqual(d["compression.type"].value, "producer")
        cases = [
            ({"cleanup.policy": "delete,shred"}, "every element must be one of"),
            ({"segment.bytes": "5"}, "segment.bytes: Value must be at least 14"),
            ({"segment.bytes": "4294967296"}, "segment.bytes: Value must be no more than"),
            ({"retention.ms": "soon"}, "retention.ms: Not a number"),
            ({"write.caching": "maybe"}, "either true or false"),
            ({"compression.type": "brotli"}, "String must be one of"),
            ({"message.timestamp.type": "Now"}, "message.timestamp.type"),
            # Valid in Kafka, but Strata could not honour them: refused.
            ({"compression.type": "zstd"}, "only producer is supported"),
            ({"min.insync.replicas": "2"}, "min.insync.replicas: Strata is one broker"),
            ({"segment.jitter.ms": "100"}, "no jitter"),
            ({"preallocate": "true"}, "not preallocated"),
            ({"segment.index.bytes": "4096"}, "no size limit"),
            ({"file.delete.delay.ms": "0"}, "as soon as no reader holds them"),
            ({"no.such.config": "1"}, "Unknown topic config name: no.such.config"),
        ]
        for i, (cfg, needle) in enumerate(cases):
            name = "ct-bad-%d" % i
            fs = self.a.create_topics([NewTopic(name, 1, 1, config=cfg)])
            self.assert_refused(fs[name], confluent_kafka.KafkaError.INVALID_CONFIG, needle)
        self.assertFalse(any(t.startswith("ct-bad") for t in self.a.list_topics(timeout=30).topics))
        # validate_only checks the configs too and creates nothing.
        fs = self.a.create_topics([NewTopic("ct-vo", 1, 1, config={"retention.bytes": "x"})],
                                  validate_only=True)
        self.assert_refused(fs["ct-vo"], confluent_kafka.KafkaError.INVALID_CONFIG)
        self.a.create_topics([NewTopic("ct-vo", 1, 1, config={"retention.bytes": "10"})],
                             validate_only=True)["ct-vo"].result(30)
        self.assertNotIn("ct-vo", self.a.list_topics(timeout=30).topics)

    def test_create_topics_v5_returns_configs_with_sources(self):
        code, msg, cfg = create_topic_v5(self.b.port, "ct5", {"segment.bytes": "1048576"})
        self.assertEqual(code, 0, msg)
        self.assertEqual(cfg["segment.bytes"], ("1048576", 1))
        self.assertEqual(cfg["retention.ms"], ("86400000", 4))
        self.assertEqual(cfg["cleanup.policy"], ("delete", 5))
        code, msg, cfg = create_topic_v5(self.b.port, "ct5-vo", {"retention.bytes": "5"},
                                         validate_only=True)
        self.assertEqual(code, 0)
        self.assertEqual(cfg["retention.bytes"], ("5", 1))
        code, msg, cfg = create_topic_v5(self.b.port, "ct5-bad", {"segment.ms": "0"})
        self.assertEqual(code, INVALID_CONFIG)
        self.assertIn("segment.ms: Value must be at least 1", msg)

    def test_describe_v0_is_default(self):
        self.create("dv0", 1, **{"retention.bytes": "4096"})
        body = struct.pack(">i", 1) + struct.pack(">b", 2) + s16("dv0") + struct.pack(">i", 2)
        body += s16("retention.bytes") + s16("segment.bytes")
        r = call(self.b.port, 32, 0, body)
        r.take(">i")
        self.assertEqual(r.take(">i"), 1)
        self.assertEqual(r.take(">h"), 0)
        r.str16(), r.take(">b"), r.str16()
        got = {}
        for _ in range(r.take(">i")):
            k, v = r.str16(), r.str16()
            _ro, is_default, _sens = r.take(">?"), r.take(">?"), r.take(">?")
            got[k] = (v, is_default)
        self.assertEqual(got, {"retention.bytes": ("4096", False),
                               "segment.bytes": ("1073741824", True)})

    # ---- AlterConfigs / IncrementalAlterConfigs ----

    def test_alter_configs_replaces_the_override_set(self):
        self.create("ac1", 1, **{"retention.bytes": "100000", "segment.ms": "60000"})
        res = ConfigResource("topic", "ac1", set_config={"retention.ms": "120000"})
        self.a.alter_configs([res])[res].result(30)
        d = self.describe("topic", "ac1")
        self.assertEqual(d["retention.ms"].value, "120000")
        self.assertEqual(d["retention.ms"].source, ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
        # AlterConfigs replaces: the earlier overrides are gone.
        self.assertEqual(d["retention.bytes"].source, ConfigSource.DEFAULT_CONFIG.value)
        self.assertEqual(d["segment.ms"].value, "604800000")
        # Invalid: nothing changes.
        res = ConfigResource("topic", "ac1", set_config={"retention.ms": "1", "segment.ms": "0"})
        self.assert_refused(self.a.alter_configs([res])[res],
                            confluent_kafka.KafkaError.INVALID_CONFIG, "segment.ms")
        self.assertEqual(self.describe("topic", "ac1")["retention.ms"].value, "120000")
        # validate_only changes nothing.
        res = ConfigResource("topic", "ac1", set_config={"retention.ms": "777"})
        self.a.alter_configs([res], validate_only=True)[res].result(30)
        self.assertEqual(self.describe("topic", "ac1")["retention.ms"].value, "120000")
        # Unknown topic, broker resource.
        res = ConfigResource("topic", "no-such", set_config={"retention.ms": "1"})
        self.assert_refused(self.a.alter_configs([res])[res],
                            confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART)
        res = ConfigResource("broker", "0", set_config={"log.retention.ms": "1"})
        self.assert_refused(self.a.alter_configs([res])[res],
                            confluent_kafka.KafkaError.INVALID_REQUEST, "dynamically")

    def test_incremental_alter_configs(self):
        self.create("ia1", 1, **{"retention.bytes": "100000", "segment.ms": "60000"})
        port = self.b.port
        out = incremental_alter(port, [(2, "ia1", [("retention.ms", 0, "90000"),
                                                   ("segment.ms", 1, None)])])
        self.assertEqual(out, [(0, None, "ia1")])
        d = self.describe("topic", "ia1")
        self.assertEqual(d["retention.ms"].value, "90000")
        self.assertEqual(d["retention.bytes"].value, "100000")  # untouched
        self.assertEqual(d["segment.ms"].source, ConfigSource.DEFAULT_CONFIG.value)
        # APPEND/SUBTRACT on a list.
        out = incremental_alter(port, [(2, "ia1", [("cleanup.policy", 2, "delete")])])
        self.assertEqual(out[0][0], 0, out)
        self.assertEqual(self.describe("topic", "ia1")["cleanup.policy"].value, "delete")
        out = incremental_alter(port, [(2, "ia1", [("cleanup.policy", 2, "compact")])])
        self.assertEqual(out[0][0], 0, out)
        self.assertEqual(self.describe("topic", "ia1")["cleanup.policy"].value, "delete,compact")
        out = incremental_alter(port, [(2, "ia1", [("cleanup.policy", 3, "delete")])])
        self.assertEqual(out[0][0], 0, out)
        self.assertEqual(self.describe("topic", "ia1")["cleanup.policy"].value, "compact")
        out = incremental_alter(port, [(2, "ia1", [("cleanup.policy", 3, "compact")])])
        self.assertEqual(out[0][0], INVALID_CONFIG)
        self.assertIn("empty", out[0][1])
        # APPEND on a non-list key, unknown keys, duplicates, bad values.
        out = incremental_alter(port, [(2, "ia1", [("retention.ms", 2, "5")])])
        self.assertEqual(out[0][0], INVALID_CONFIG)
        self.assertIn("append is not allowed", out[0][1])
        out = incremental_alter(port, [(2, "ia1", [("bogus.key", 0, "5")])])
        self.assertEqual(out[0][:2], (INVALID_CONFIG, "Unknown topic config name: bogus.key"))
        out = incremental_alter(port, [(2, "ia1", [("retention.ms", 0, "5"),
                                                   ("retention.ms", 0, "6")])])
        self.assertEqual(out[0][0], INVALID_REQUEST)
        out = incremental_alter(port, [(2, "ia1", [("retention.ms", 0, "1"),
                                                   ("min.insync.replicas", 0, "0")])])
        self.assertEqual(out[0][0], INVALID_CONFIG)
        self.assertIn("min.insync.replicas: Value must be at least 1", out[0][1])
        self.assertEqual(self.describe("topic", "ia1")["retention.ms"].value, "90000")
        # validate_only.
        out = incremental_alter(port, [(2, "ia1", [("retention.ms", 0, "1")])],
                                validate_only=True)
        self.assertEqual(out[0][0], 0)
        self.assertEqual(self.describe("topic", "ia1")["retention.ms"].value, "90000")
        # Broker: no dynamic config, clearly refused; unknown resource type.
        out = incremental_alter(port, [(4, "0", [("log.retention.ms", 0, "1")]),
                                       (8, "0", [("root", 0, "DEBUG")])])
        self.assertEqual(out[0][0], INVALID_REQUEST)
        self.assertIn("dynamically", out[0][1])
        self.assertEqual(out[1][0], INVALID_REQUEST)

    # ---- Configs applied on the produce path ----

    def produce_raw(self, topic, value, ts=1700000000000):
        """(error_code, base_offset, log_append_time) of a Produce v3 of one batch."""
        c = kwire.Conn(self.b.port)
        try:
            data = c.call(kwire.produce_v3(topic, 0, kwire.record_batch([value], ts=ts)))
        finally:
            c.close()
        err, base = kwire.parse_produce_v3(data)
        (lat,) = struct.unpack(">q", data[-12:-4])  # log_append_time, then throttle
        return err, base, lat

    def test_max_message_bytes_limits_each_batch(self):
        self.create("mmb", **{"max.message.bytes": "2000"})
        n = next(n for n in range(2000) if len(kwire.record_batch([b"x" * n])) == 2000)
        err, _, _ = self.produce_raw("mmb", b"x" * n)
        self.assertEqual(err, 0)  # exactly max.message.bytes
        err, _, _ = self.produce_raw("mmb", b"x" * (n + 1))
        self.assertEqual(err, 10)  # MESSAGE_TOO_LARGE
        # A real client gets the same error.
        p = Producer({"bootstrap.servers": self.b.bootstrap, "message.max.bytes": 100000,
                      "linger.ms": 0})
        errs = []
        p.produce("mmb", b"y" * 3000, on_delivery=lambda e, m: errs.append(e))
        p.flush(30)
        self.assertEqual(errs[0].code(), confluent_kafka.KafkaError.MSG_SIZE_TOO_LARGE, errs)
        # A live change applies to the next produce.
        out = incremental_alter(self.b.port, [(2, "mmb", [("max.message.bytes", 0, "5000")])])
        self.assertEqual(out[0][0], 0, out)
        err, _, _ = self.produce_raw("mmb", b"x" * 3000)
        self.assertEqual(err, 0)

    def test_timestamp_bounds_refuse_records_out_of_range(self):
        day = 86400000
        self.create("tsb", **{"message.timestamp.before.max.ms": str(day),
                              "message.timestamp.after.max.ms": "60000"})
        self.create("tsd", **{"message.timestamp.difference.max.ms": str(day)})
        now = int(time.time() * 1000)
        for topic in ("tsb", "tsd"):
            self.assertEqual(self.produce_raw(topic, b"ok", ts=now)[0], 0)
            self.assertEqual(self.produce_raw(topic, b"old", ts=now - 2 * day)[0], 32)
        self.assertEqual(self.produce_raw("tsb", b"soon", ts=now + 3600000)[0], 32)
        self.assertEqual(self.produce_raw("tsd", b"soon", ts=now + 3600000)[0], 0)
        # Records inside a compressed batch are checked too.
        p = Producer({"bootstrap.servers": self.b.bootstrap, "compression.type": "lz4",
                      "linger.ms": 50})
        p.produce("tsb", b"warm-up", timestamp=now)  # metadata known: one batch below
        self.assertEqual(p.flush(30), 0)
        errs = {}
        for i in range(20):
            p.produce("tsb", b"r%d" % i, timestamp=now - 2 * day if i == 7 else now,
                      on_delivery=lambda e, m: errs.__setitem__(m.value(), e))
        p.flush(30)
        self.assertEqual(len(errs), 20)
        bad = [e.code() for e in errs.values() if e is not None]
        self.assertEqual(errs[b"r7"].code(), confluent_kafka.KafkaError.INVALID_TIMESTAMP)
        self.assertEqual(set(bad), {confluent_kafka.KafkaError.INVALID_TIMESTAMP})
        self.assertGreater(len(bad), 1)  # the whole compressed batch is refused
        # LogAppendTime topics are not checked: the broker sets the time.
        self.create("tsl", **{"message.timestamp.type": "LogAppendTime",
                              "message.timestamp.before.max.ms": "1000"})
        self.assertEqual(self.produce_raw("tsl", b"old", ts=now - 2 * day)[0], 0)

    def test_downconversion_disabled_refuses_old_fetch_versions(self):
        self.create("nodc", **{"message.downconversion.enable": "false"})
        self.create("dc")
        for topic, want in (("nodc", 35), ("dc", 0)):  # 35: UNSUPPORTED_VERSION
            self.assertEqual(self.produce_raw(topic, b"v")[0], 0)
            t = topic.encode()
            body = (struct.pack(">iiii", -1, 0, 1, 1 << 20) + struct.pack(">i", 1)
                    + struct.pack(">h", len(t)) + t + struct.pack(">i", 1)
                    + struct.pack(">iqi", 0, 0, 1 << 20))
            c = kwire.Conn(self.b.port)
            try:
                data = c.call(kwire.frame(1, 3, 1, body))  # Fetch v3
            finally:
                c.close()
            o = 8 + 4 + 4  # size, correlation id, throttle, topic count
            (n,) = struct.unpack_from(">h", data, o)
            o += 2 + n + 4
            _, err = struct.unpack_from(">ih", data, o)
            self.assertEqual(err, want, topic)
        # Fetch v4+ (v2 batches) is served either way.
        from kafka import KafkaConsumer, TopicPartition as KTP
        k = KafkaConsumer(bootstrap_servers=self.b.bootstrap, enable_auto_commit=False,
                          consumer_timeout_ms=5000)
        try:
            k.assign([KTP("nodc", 0)])
            k.seek(KTP("nodc", 0), 0)
            self.assertEqual(next(iter(k)).value, b"v")
        finally:
            k.close()

    def test_log_append_time_is_stamped_by_the_broker(self):
        self.create("lat", **{"message.timestamp.type": "LogAppendTime"})
        self.create("ct")
        before = int(time.time() * 1000)
        err, base, lat = self.produce_raw("lat", b"v1", ts=1700000000000)
        after = int(time.time() * 1000)
        self.assertEqual((err, base), (0, 0))
        self.assertTrue(before <= lat <= after, (before, lat, after))
        err, _, ct_lat = self.produce_raw("ct", b"v1", ts=1700000000000)
        self.assertEqual((err, ct_lat), (0, -1))
        # Consumers (which check the CRC) see the broker's time and type.
        c = Consumer({"bootstrap.servers": self.b.bootstrap, "group.id": "lat",
                      "check.crcs": True, "enable.auto.commit": False})
        try:
            got = {}
            for topic in ("lat", "ct"):
                c.assign([TopicPartition(topic, 0, 0)])
                deadline = time.monotonic() + 30
                while topic not in got and time.monotonic() < deadline:
                    m = c.poll(1)
                    if m is not None and not m.error():
                        got[topic] = m.timestamp()
            self.assertEqual(got["lat"], (confluent_kafka.TIMESTAMP_LOG_APPEND_TIME, lat))
            self.assertEqual(got["ct"], (confluent_kafka.TIMESTAMP_CREATE_TIME, 1700000000000))
        finally:
            c.close()
        from kafka import KafkaConsumer, TopicPartition as KTP
        k = KafkaConsumer(bootstrap_servers=self.b.bootstrap, check_crcs=True,
                          enable_auto_commit=False, consumer_timeout_ms=5000)
        try:
            k.assign([KTP("lat", 0)])
            k.seek(KTP("lat", 0), 0)
            m = next(iter(k))
            self.assertEqual((m.timestamp_type, m.timestamp, m.value), (1, lat, b"v1"))
        finally:
            k.close()

    def test_retention_bytes_change_applies_live(self):
        self.create("live1", 1, **{"segment.bytes": "1024"})
        p = Producer({"bootstrap.servers": self.b.bootstrap, "linger.ms": 0})
        for i in range(40):
            p.produce("live1", value=b"%04d" % i + b"x" * 300, partition=0)
            p.flush(30)  # one batch per message: several segments
        c = Consumer({"bootstrap.servers": self.b.bootstrap, "group.id": "it-cfg"})
        tp = TopicPartition("live1", 0)
        lo, hi = c.get_watermark_offsets(tp, timeout=30, cached=False)
        self.assertEqual((lo, hi), (0, 40))
        out = incremental_alter(self.b.port, [(2, "live1", [("retention.bytes", 0, "2000")])])
        self.assertEqual(out[0][0], 0, out)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lo, hi = c.get_watermark_offsets(tp, timeout=30, cached=False)
            if lo > 0:
                break
            time.sleep(0.2)
        c.close()
        self.assertGreater(lo, 0, "log start offset never moved after retention.bytes=2000")
        self.assertEqual(hi, 40)

    # ---- CreatePartitions ----

    def test_create_partitions(self):
        self.create("cp1", 2)
        self.a.create_partitions([NewPartitions("cp1", 4)])["cp1"].result(30)
        self.assertEqual(len(self.a.list_topics("cp1", timeout=30).topics["cp1"].partitions), 4)
        # The new partition works at once.
        rc, _, err = kcat("-b", self.b.bootstrap, "-P", "-t", "cp1", "-p", "3", input="a\nb\n")
        self.assertEqual(rc, 0, err)
        rc, out, err = kcat("-b", self.b.bootstrap, "-C", "-t", "cp1", "-p", "3",
                            "-o", "beginning", "-e", "-f", "%s\n")
        self.assertEqual(out.splitlines(), ["a", "b"], err)
        fs = self.a.create_partitions([NewPartitions("cp1", 3)])
        self.assert_refused(fs["cp1"], confluent_kafka.KafkaError.INVALID_PARTITIONS,
                            "Topic currently has 4 partitions, which is higher than the "
                            "requested 3.")
        fs = self.a.create_partitions([NewPartitions("cp1", 4)])
        self.assert_refused(fs["cp1"], confluent_kafka.KafkaError.INVALID_PARTITIONS)
        self.a.create_partitions([NewPartitions("cp1", 9)], validate_only=True)["cp1"].result(30)
        self.assertEqual(len(self.a.list_topics("cp1", timeout=30).topics["cp1"].partitions), 4)
        fs = self.a.create_partitions([NewPartitions("cp1", 6, [[0], [5]])])
        self.assert_refused(fs["cp1"], confluent_kafka.KafkaError.INVALID_REPLICA_ASSIGNMENT,
                            "one broker")
        self.a.create_partitions([NewPartitions("cp1", 5, [[0]])])["cp1"].result(30)
        self.assertEqual(len(self.a.list_topics("cp1", timeout=30).topics["cp1"].partitions), 5)
        fs = self.a.create_partitions([NewPartitions("no-such-cp", 5)])
        self.assert_refused(fs["no-such-cp"], confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART)


    # ---- kafka-python (its own codec negotiates older versions) ----

    def test_kafka_python_admin(self):
        from kafka.admin import (ConfigResource as KConfigResource, ConfigResourceType,
                                 KafkaAdminClient, NewPartitions as KNewPartitions,
                                 NewTopic as KNewTopic)
        a = KafkaAdminClient(bootstrap_servers=self.b.bootstrap)
        try:
            a.create_topics([KNewTopic("kpy1", 1, 1, topic_configs={"retention.ms": "1000"})])
            r = a.describe_configs([KConfigResource(ConfigResourceType.TOPIC, "kpy1",
                                                    configs={"retention.ms": None,
                                                             "segment.bytes": None})])
            entries = {e[0]: e for e in r[0].resources[0][4]}
            self.assertEqual(entries["retention.ms"][1], "1000")
            self.assertEqual(entries["segment.bytes"][1], "1073741824")
            r = a.alter_configs([KConfigResource(ConfigResourceType.TOPIC, "kpy1",
                                                 configs={"retention.ms": "2000"})])
            self.assertEqual(r.resources[0][0], 0)
            self.assertEqual(self.describe("topic", "kpy1")["retention.ms"].value, "2000")
            r = a.alter_configs([KConfigResource(ConfigResourceType.TOPIC, "kpy1",
                                                 configs={"retention.ms": "-7"})])
            self.assertEqual(r.resources[0][0], INVALID_CONFIG)
            r = a.create_partitions({"kpy1": KNewPartitions(3)})
            self.assertEqual(r.topic_errors[0][1], 0)
            self.assertEqual(len(self.a.list_topics("kpy1", timeout=30).topics["kpy1"]
                                 .partitions), 3)
        finally:
            a.close()


class RestartTest(unittest.TestCase):
    def test_values_stored_before_they_were_refused_are_not_described(self):
        import sqlite3
        b = Broker()
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic("stale", 1, 1)])["stale"].result(30)
            rc, out = b.stop()
            self.assertEqual(rc, 0, out)
            db = sqlite3.connect(os.path.join(b.data, "meta.db"))
            db.executemany("INSERT INTO topic_configs(topic, key, value) VALUES('stale', ?, ?)",
                           [("compression.type", "zstd"), ("min.insync.replicas", "2"),
                            ("retention.ms", "123456")])
            db.commit()
            db.close()
            b.start()
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            res = ConfigResource("topic", "stale")
            d = a.describe_configs([res])[res].result(30)
            self.assertEqual((d["compression.type"].value, d["compression.type"].source),
                             ("producer", ConfigSource.DEFAULT_CONFIG.value))
            self.assertEqual(d["min.insync.replicas"].value, "1")
            self.assertEqual(d["retention.ms"].value, "123456")  # in force: shown
        finally:
            b.close()

    def test_configs_and_partitions_survive_restart(self):
        b = Broker()
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic("rs1", 1, 1, config={"retention.ms": "3600000"})])["rs1"] \
                .result(30)
            res = ConfigResource("topic", "rs1", set_config={"retention.ms": "3600000",
                                                             "segment.bytes": "1048576"})
            a.alter_configs([res])[res].result(30)
            a.create_partitions([NewPartitions("rs1", 3)])["rs1"].result(30)
            rc, out = b.stop()
            self.assertEqual(rc, 0, out)
            b.start()
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            res = ConfigResource("topic", "rs1")
            d = a.describe_configs([res])[res].result(30)
            self.assertEqual(d["retention.ms"].value, "3600000")
            self.assertEqual(d["segment.bytes"].value, "1048576")
            self.assertEqual(d["segment.bytes"].source, ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
            self.assertEqual(len(a.list_topics("rs1", timeout=30).topics["rs1"].partitions), 3)
        finally:
            b.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
