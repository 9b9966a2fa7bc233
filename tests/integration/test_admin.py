#!/usr/bin/python3
"""Admin HTTP API integration tests: real HTTP (urllib and raw sockets) against a
real stratad: every endpoint, malformed and oversized requests, config
validation and persistence, bearer token, and metrics that follow produce and
consume (checked by promtool when Debian's prometheus package provides it)."""
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker  # noqa: E402

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # noqa: E402


def http(port, method, path, body=None, headers=None, timeout=10):
    """(status, headers, parsed JSON or text) of one request."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                 method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, hdrs, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, e.headers, e.read()
    text = raw.decode()
    if text and hdrs.get("Content-Type", "").startswith("application/json"):
        return status, hdrs, json.loads(text)
    return status, hdrs, text


def raw(port, data, timeout=10):
    """Send raw bytes; return everything the server sends until it closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()


def status_of(response):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", response)
    return int(m.group(1)) if m else None


def body_of(response):
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


def parse_metrics(text):
    """{(name, frozenset(labels)): value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        assert m, "bad metrics line: %r" % line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def metric(ms, name, **labels):
    return ms.get((name, frozenset(labels.items())), 0.0)


def check_format(test, text):
    """promtool check metrics (scripts/deps.sh test installs Debian's prometheus),
    plus our own checks: every sample parses, TYPE lines name known types, each
    metric has HELP and TYPE once, histograms are cumulative and end at _count."""
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
        test.assertEqual(p.returncode, 0, p.stdout + p.stderr)
    else:
        print("promtool not found: checked with this test's own checks only")
    ms = parse_metrics(text)
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split()
            test.assertNotIn(name, types)
            test.assertIn(typ, ("counter", "gauge", "histogram"))
            test.assertIn("# HELP %s " % name, text)
            types[name] = typ
    for (name, labels), v in ms.items():
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        test.assertIn(name if name in types else base, types, name)
        if name.endswith("_bucket"):
            rest = frozenset(kv for kv in labels if kv[0] != "le")
            test.assertLessEqual(v, ms[(base + "_count", rest)], (name, labels))
            if dict(labels)["le"] == "+Inf":
                test.assertEqual(v, ms[(base + "_count", rest)], (name, labels))


class BrokerTestCase(unittest.TestCase):
    """One broker (started with broker_args) for every test of the class."""
    broker_args = ()

    @classmethod
    def setUpClass(cls):
        cls.b = Broker(*cls.broker_args)
        cls.port = cls.b.admin_port

    @classmethod
    def tearDownClass(cls):
        rc, out = cls.b.stop()
        cls.b.close()
        assert rc == 0, out


class AdminApiTest(BrokerTestCase):

    def get(self, path, **kw):
        return http(self.port, "GET", path, **kw)

    def create_topic(self, name, partitions):
        a = AdminClient({"bootstrap.servers": self.b.bootstrap})
        for f in a.create_topics([NewTopic(name, partitions, 1)]).values():
            f.result(30)

    def produce(self, topic, partition, n, size=100):
        p = Producer({"bootstrap.servers": self.b.bootstrap, "linger.ms": 5})
        for i in range(n):
            p.produce(topic, b"v%05d" % i + b"x" * size, partition=partition)
        self.assertEqual(p.flush(30), 0)

    def consume(self, topic, partitions, n):
        c = Consumer({"bootstrap.servers": self.b.bootstrap, "group.id": "adm-nogroup",
                      "enable.auto.commit": False})
        c.assign([TopicPartition(topic, p, 0) for p in partitions])
        got = 0
        deadline = time.monotonic() + 30
        while got < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got += 1
        c.close()
        self.assertEqual(got, n)

    # ---- health and cluster ----

    def test_status_live_and_ready(self):
        st, _, body = self.get("/v1/status/live")
        self.assertEqual((st, body), (200, {"status": "live"}))
        st, _, body = self.get("/v1/status/ready")
        self.assertEqual(st, 200)
        self.assertEqual(body, {"status": "ready", "shards": 2})
        st, hdrs, body = http(self.port, "HEAD", "/v1/status/live")
        self.assertEqual((st, body, hdrs["Content-Length"]), (200, "", "18"))

    def test_cluster(self):
        st, _, c = self.get("/v1/cluster")
        self.assertEqual(st, 200)
        self.assertEqual(c["node_id"], 0)
        self.assertEqual(len(c["cluster_id"]), 22)
        self.assertRegex(c["version"], r"^\d+\.\d+\.\d+$")
        self.assertEqual(c["listeners"]["kafka"], self.b.bootstrap)
        self.assertEqual(c["listeners"]["admin"], "127.0.0.1:%d" % self.port)
        self.assertEqual(c["shards"], 2)
        self.assertGreaterEqual(c["uptime_seconds"], 0)
        self.assertIsInstance(c["topics"], int)

    # ---- config ----

    def config(self):
        st, _, doc = self.get("/v1/cluster/config")
        self.assertEqual(st, 200)
        return {e["name"]: e for e in doc["config"]}

    def test_config_get_values_and_sources(self):
        cfg = self.config()
        self.assertEqual(cfg["log.dir"]["value"], self.b.data)
        self.assertEqual(cfg["log.dir"]["source"], "command line")
        self.assertEqual(cfg["strata.smp"]["value"], 2)
        self.assertEqual(cfg["log.segment.bytes"]["source"], "default")
        self.assertEqual(cfg["log.segment.bytes"]["type"], "int")
        self.assertTrue(cfg["log.segment.bytes"]["reloadable"])
        self.assertFalse(cfg["log.dir"]["reloadable"])
        self.assertEqual(cfg["auto.create.topics.enable"]["value"], True)
        self.assertEqual(cfg["strata.admin.token.file"]["value"], "")

    def put_config(self, body):
        return http(self.port, "PUT", "/v1/cluster/config", body=body,
                    headers={"Content-Type": "application/json"})

    def test_config_put_validation_errors(self):
        cases = [
            ('{"upsert": {"no.such.key": 1}}', "invalid_config", "no.such.key"),
            ('{"upsert": {"log.dir": "/elsewhere"}}', "invalid_config", "log.dir"),
            ('{"upsert": {"log.segment.bytes": "lots"}}', "invalid_config", "log.segment.bytes"),
            ('{"upsert": {"log.segment.bytes": 1}}', "invalid_config", "log.segment.bytes"),
            ('{"upsert": {"auto.create.topics.enable": [1]}}', "invalid_config",
             "auto.create.topics.enable"),
            ('{"remove": ["listeners"]}', "invalid_config", "listeners"),
            ('{"upsert": {}, "extra": 1}', "invalid_request", None),
            ('[1, 2]', "invalid_request", None),
            ('{"upsert": ', "invalid_json", None),
            ('', "invalid_json", None),
        ]
        for body, code, key in cases:
            st, _, doc = self.put_config(body)
            self.assertEqual(st, 400, body)
            self.assertEqual(doc["error"], code, body)
            self.assertEqual(doc.get("key"), key, body)
            self.assertIn("message", doc)
            # Keys that are not reloadable say that they need a restart.
            self.assertEqual(doc.get("restart_required", False),
                             key in ("log.dir", "listeners"), body)
        # Nothing was persisted by the refused requests.
        self.assertFalse(os.path.exists(os.path.join(self.b.data, "cluster_config.yaml")))
        self.assertFalse(any("pending" in e for e in self.config().values()))

    def test_config_put_persists_and_is_read_at_start(self):
        b = Broker(smp=1)
        try:
            st, _, doc = http(b.admin_port, "PUT", "/v1/cluster/config",
                              body='{"upsert": {"log.segment.bytes": "8MiB", '
                                   '"strata.log.level": "info", "num.partitions": 3}}')
            self.assertEqual(st, 200, doc)
            self.assertEqual(sorted(doc["applied"]), ["log.segment.bytes", "num.partitions",
                                                      "strata.log.level"])
            self.assertEqual((doc["restart_required"], doc["shadowed"]), ([], []))
            path = os.path.join(b.data, "cluster_config.yaml")
            self.assertEqual(doc["persisted_file"], path)
            self.assertIn('"log.segment.bytes": "8MiB"', open(path).read())
            st, _, doc = http(b.admin_port, "PUT", "/v1/cluster/config",
                              body='{"remove": ["num.partitions"]}')
            self.assertEqual(st, 200, doc)
            self.assertEqual(doc["applied"], ["num.partitions"])  # back to its start value
            self.assertNotIn("num.partitions", open(path).read())
            st, _, doc = http(b.admin_port, "GET", "/v1/cluster/config")
            cfg = {e["name"]: e for e in doc["config"]}
            seg = cfg["log.segment.bytes"]
            self.assertEqual((seg["value"], seg["source"]), (8 << 20, "admin API"))  # live
            self.assertNotIn("pending", seg)
            npart = cfg["num.partitions"]
            self.assertEqual((npart["value"], npart["source"]), (1, "default"))
            rc, out = b.stop()
            self.assertEqual(rc, 0, out)
            b.start()
            st, _, doc = http(b.admin_port, "GET", "/v1/cluster/config")
            seg = [e for e in doc["config"] if e["name"] == "log.segment.bytes"][0]
            self.assertEqual(seg["value"], 8 << 20)
            self.assertTrue(seg["source"].startswith(path), seg)
            npart = [e for e in doc["config"] if e["name"] == "num.partitions"][0]
            self.assertEqual((npart["value"], npart["source"]), (1, "default"))
            # Removing a key the broker started with from the file: in effect until restart.
            st, _, doc = http(b.admin_port, "PUT", "/v1/cluster/config",
                              body='{"remove": ["log.segment.bytes"]}')
            self.assertEqual((st, doc["restart_required"]), (200, ["log.segment.bytes"]), doc)
            st, _, doc = http(b.admin_port, "GET", "/v1/cluster/config")
            seg = [e for e in doc["config"] if e["name"] == "log.segment.bytes"][0]
            self.assertEqual(seg["value"], 8 << 20)
        finally:
            b.stop()
            b.close()

    # ---- partitions and storage ----

    def test_partition_state(self):
        self.create_topic("adm-part", 3)
        self.produce("adm-part", 1, 40)
        st, _, p = self.get("/v1/topics/adm-part/partitions/1")
        self.assertEqual(st, 200, p)
        self.assertEqual((p["topic"], p["partition"]), ("adm-part", 1))
        self.assertEqual(p["end_offset"], 40)
        self.assertEqual(p["high_watermark"], 40)
        self.assertEqual(p["log_start_offset"], 0)
        self.assertEqual(p["local_start_offset"], 0)
        self.assertGreater(p["size_bytes"], 40 * 100)
        self.assertGreaterEqual(p["segments"], 1)
        self.assertIn(p["shard"], (0, 1))
        st, _, p0 = self.get("/v1/topics/adm-part/partitions/0")
        self.assertEqual((st, p0["end_offset"]), (200, 0))
        for path, code, err in [("/v1/topics/nope/partitions/0", 404, "unknown_topic"),
                                ("/v1/topics/adm-part/partitions/3", 404, "unknown_partition"),
                                ("/v1/topics/adm-part/partitions/-1", 400, "bad_request"),
                                ("/v1/topics/adm-part/partitions/x", 400, "bad_request")]:
            st, _, doc = self.get(path)
            self.assertEqual((st, doc["error"]), (code, err), path)

    def test_storage(self):
        self.create_topic("adm-store", 2)
        self.produce("adm-store", 0, 10)
        st, _, doc = self.get("/v1/storage")
        self.assertEqual(st, 200)
        self.assertFalse(doc["remote"]["enabled"])
        self.assertEqual(doc["remote"]["uploaded_bytes"], 0)  # since start
        self.assertIsNone(doc["remote"]["last_error"])
        self.assertIsNone(doc["remote"]["upload_lag_bytes"])  # no remote-enabled partition
        t = [x for x in doc["topics"] if x["topic"] == "adm-store"][0]
        self.assertEqual(t["partitions"], 2)
        self.assertGreater(t["local_bytes"], 0)
        self.assertIsNone(t["uploaded_offset"])
        self.assertGreaterEqual(doc["local"]["bytes"], t["local_bytes"])
        st, _, doc = self.get("/v1/storage/topics/adm-store")
        self.assertEqual(st, 200)
        self.assertEqual([p["partition"] for p in doc["partitions"]], [0, 1])
        p0 = doc["partitions"][0]
        self.assertEqual(p0["end_offset"], 10)
        self.assertGreater(p0["local_bytes"], 0)
        self.assertIsNone(p0["upload_lag_bytes"])
        self.assertEqual(doc["local_bytes"], p0["local_bytes"] + doc["partitions"][1]["local_bytes"])
        st, _, doc = self.get("/v1/storage/topics/nope")
        self.assertEqual((st, doc["error"]), (404, "unknown_topic"))

    def test_storage_recover_starts(self):
        st, _, doc = http(self.port, "POST", "/v1/storage/recover", body="{}")
        self.assertEqual((st, doc["status"]), (202, "started"))  # test_tiering checks the outcome
        st, hdrs, doc = self.get("/v1/storage/recover")
        self.assertEqual((st, doc["error"]), (405, "method_not_allowed"))
        self.assertEqual(hdrs["Allow"], "POST")

    # ---- metrics ----

    def scrape(self):
        st, hdrs, text = self.get("/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(hdrs["Content-Type"].startswith("text/plain; version=0.0.4"))
        return text, parse_metrics(text)

    def test_metrics_follow_produce_and_consume(self):
        self.create_topic("adm-metrics", 1)
        _, before = self.scrape()
        self.produce("adm-metrics", 0, 50)
        self.consume("adm-metrics", [0], 50)
        text, m = self.scrape()
        t = "adm-metrics"
        produced = metric(m, "strata_kafka_produce_bytes_total", topic=t)
        size = metric(m, "strata_log_size_bytes", topic=t, partition="0")
        self.assertGreater(produced, 50 * 100)
        self.assertEqual(produced, size)  # every appended byte is in the log, nothing else
        self.assertGreaterEqual(metric(m, "strata_kafka_produce_requests_total", topic=t), 1)
        self.assertGreaterEqual(metric(m, "strata_kafka_fetch_bytes_total", topic=t), produced)
        self.assertGreaterEqual(metric(m, "strata_kafka_fetch_requests_total", topic=t), 1)
        self.assertEqual(metric(m, "strata_log_end_offset", topic=t, partition="0"), 50)
        self.assertGreaterEqual(metric(m, "strata_log_segments", topic=t, partition="0"), 1)
        for api in ("Produce", "Fetch", "Metadata"):
            name = "strata_kafka_request_latency_seconds_count"
            self.assertGreater(metric(m, name, api=api), metric(before, name, api=api), api)
            self.assertEqual(metric(m, name, api=api),
                             metric(m, "strata_kafka_request_latency_seconds_bucket", api=api,
                                    le="+Inf"))
        acc = "strata_kafka_connections_accepted_total"
        self.assertGreaterEqual(metric(m, acc) - metric(before, acc), 2)
        self.assertGreaterEqual(metric(m, "strata_kafka_connections"), 0)
        fs = "strata_log_fsync_latency_seconds_count"
        self.assertGreater(metric(m, fs), metric(before, fs))  # acks=all waits for fdatasync
        # Every partition append passes the four produce stages once (only this test produced
        # between the scrapes), and each stage's time is part of the request's.
        appends = metric(m, "strata_kafka_produce_requests_total", topic=t) - metric(
            before, "strata_kafka_produce_requests_total", topic=t)
        st = "strata_kafka_produce_stage_seconds"
        stage_sum = 0.0
        for stage in ("queue", "append", "ack", "reply"):
            self.assertEqual(metric(m, st + "_count", stage=stage) -
                             metric(before, st + "_count", stage=stage), appends, stage)
            self.assertEqual(metric(m, st + "_count", stage=stage),
                             metric(m, st + "_bucket", stage=stage, le="+Inf"), stage)
            stage_sum += metric(m, st + "_sum", stage=stage) - metric(before, st + "_sum",
                                                                      stage=stage)
        rl = "strata_kafka_request_latency_seconds_sum"
        self.assertLessEqual(stage_sum, metric(m, rl, api="Produce") -
                             metric(before, rl, api="Produce"))
        # Each shard's 100 ms lag timer has ticked (wait for it on a fresh broker).
        lag = "strata_shard_loop_lag_seconds_count"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
                metric(self.scrape()[1], lag, shard=s) > 0 for s in ("0", "1")):
            time.sleep(0.1)
        _, lm = self.scrape()
        for shard in ("0", "1"):
            self.assertGreater(metric(lm, lag, shard=shard), 0)
        self.assertEqual(metric(m, "strata_shards"), 2)
        self.assertEqual(
            metric(m, "strata_admin_http_requests_total") - metric(before,
                                                                   "strata_admin_http_requests_total"),
            1)  # the first scrape is counted once it was answered
        # Connections close: the gauge goes back down.
        deadline = time.monotonic() + 10
        while metric(m, "strata_kafka_connections") > 0 and time.monotonic() < deadline:
            time.sleep(0.2)
            _, m = self.scrape()
        self.assertEqual(metric(m, "strata_kafka_connections"), 0)
        check_format(self, text)

    # ---- protocol errors ----

    def test_unknown_paths_and_methods(self):
        for path in ("/", "/v1", "/v2/cluster", "/v1/cluster/nope", "/metrics/x",
                     "/v1/topics/t/partitions", "/" + "a/" * 20):
            st, _, doc = self.get(path)
            self.assertEqual((st, doc["error"]), (404, "not_found"), path)
        st, hdrs, doc = http(self.port, "POST", "/v1/cluster", body="{}")
        self.assertEqual((st, doc["error"], hdrs["Allow"]), (405, "method_not_allowed", "GET"))
        st, hdrs, doc = http(self.port, "DELETE", "/v1/cluster/config")
        self.assertEqual((st, hdrs["Allow"]), (405, "GET, PUT"))

    def test_malformed_requests(self):
        cases = [
            (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64, 400),
            (b"hello there\r\n\r\n", 400),
            (b"GET /v1/cluster HTTP/2.0\r\n\r\n", 505),
            (b"GET v1/cluster HTTP/1.1\r\n\r\n", 400),
            (b"GET /v1/cluster HTTP/1.1\r\nBad Header\r\n\r\n", 400),
            (b"GET /v1/cluster HTTP/1.1\r\nContent-Length: nope\r\n\r\n", 400),
            (b"PUT /v1/cluster/config HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
             501),
            (b"PUT /v1/cluster/config HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n", 413),
            (b"GET /v1/cluster HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
            (b"GET /v1/cluster HTTP/1.1\r\n" + b"X-A: b\r\n" * 100 + b"\r\n", 431),
        ]
        for data, code in cases:
            resp = raw(self.port, data)  # returns once the server closed the connection
            self.assertEqual(status_of(resp), code, data[:60])
            self.assertIn(b"Connection: close\r\n", resp)
            self.assertEqual(body_of(resp)["status"], code)
        # Oversized body sent in full, through urllib.
        st, _, doc = self.put_config("x" * 100000)
        self.assertEqual((st, doc["error"]), (413, "payload_too_large"))
        # A client that sends half a request and goes away, and random bytes.
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(b"GET /v1/clu")
        s.close()
        raw(self.port, os.urandom(4096) + b"\r\n\r\n")
        st, _, _ = self.get("/v1/status/live")
        self.assertEqual(st, 200)

    def test_incomplete_request_times_out(self):
        t0 = time.monotonic()
        resp = raw(self.port, b"GET /v1/cluster HTTP/1.1\r\nHost: x\r\n", timeout=30)
        self.assertEqual(status_of(resp), 408)
        self.assertEqual(body_of(resp)["error"], "request_timeout")
        self.assertLess(time.monotonic() - t0, 20)

    def test_keep_alive_and_pipelining(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sendall(b"GET /v1/status/live HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /v1/cluster HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /v1/storage HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        s.close()
        self.assertEqual(out.count(b"HTTP/1.1 200 OK\r\n"), 3)
        self.assertEqual(out.count(b"Connection: close\r\n"), 1)
        self.assertLess(out.index(b'"status":"live"'), out.index(b'"cluster_id"'))
        self.assertLess(out.index(b'"cluster_id"'), out.index(b'"remote"'))


def partition_state(port, topic, p=0):
    st, _, doc = http(port, "GET", "/v1/topics/%s/partitions/%d" % (topic, p))
    assert st == 200, doc
    return doc


def wait_until(what, cond, timeout=60):
    """Poll cond() (upper bound only) until it returns a true value."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.1)


def wait_metric(port, name, timeout, **labels):
    """Scrape until metric name{labels} is above 0 (upper bound only); the scrape."""
    def scrape():
        m = parse_metrics(http(port, "GET", "/metrics")[2])
        return m if metric(m, name, **labels) > 0 else None
    return wait_until(name, scrape, timeout)


class AdminLiveConfigTest(BrokerTestCase):
    """PUT /v1/cluster/config changes the running broker, no restart: each
    reloadable key changes behaviour that a client observes right after the
    answer."""
    broker_args = ("-X", "log.retention.check.interval.ms=200",
                   "-X", "log.index.interval.bytes=8192")

    def put(self, body, applied):
        st, _, doc = http(self.port, "PUT", "/v1/cluster/config", body=json.dumps(body))
        self.assertEqual(st, 200, doc)
        self.assertEqual(sorted(doc["applied"]), sorted(applied), doc)
        return doc

    def produce(self, topic, n, size=100, **conf):
        errors = []
        # Small batches: a segment rolls only between batches.
        p = Producer({"bootstrap.servers": self.b.bootstrap, "linger.ms": 5,
                      "batch.num.messages": 50, **conf})
        for i in range(n):
            p.produce(topic, b"x" * size, partition=0,
                      on_delivery=lambda err, msg: err and errors.append(err))
        p.flush(30)
        return errors

    def test_broker_limits_apply_live(self):
        # num.partitions: the next auto-created topic has 3 partitions.
        self.put({"upsert": {"num.partitions": 3}}, ["num.partitions"])
        self.assertEqual(self.produce("live-auto3", 1), [])
        st, _, doc = http(self.port, "GET", "/v1/storage/topics/live-auto3")
        self.assertEqual((st, len(doc["partitions"])), (200, 3))
        # auto.create.topics.enable=false: producing to an unknown topic creates nothing.
        self.put({"upsert": {"auto.create.topics.enable": False}}, ["auto.create.topics.enable"])
        errs = self.produce("live-noauto", 1, **{"message.timeout.ms": 2000})
        self.assertEqual(len(errs), 1)
        st, _, doc = http(self.port, "GET", "/v1/storage/topics/live-noauto")
        self.assertEqual((st, doc["error"]), (404, "unknown_topic"))
        self.put({"remove": ["auto.create.topics.enable", "num.partitions"]},
                 ["auto.create.topics.enable", "num.partitions"])
        self.assertEqual(self.produce("live-auto1", 1), [])
        st, _, doc = http(self.port, "GET", "/v1/storage/topics/live-auto1")
        self.assertEqual((st, len(doc["partitions"])), (200, 1))
        # message.max.bytes: a batch above the new limit is refused, then accepted again.
        self.put({"upsert": {"message.max.bytes": 1000}}, ["message.max.bytes"])
        # Kafka's DescribeConfigs of the broker shows the running value too.
        res = ConfigResource(ConfigResource.Type.BROKER, "0")
        admin = AdminClient({"bootstrap.servers": self.b.bootstrap})
        desc = admin.describe_configs([res])[res].result(30)
        self.assertEqual(desc["message.max.bytes"].value, "1000")
        errs = self.produce("live-auto1", 1, size=3000)
        self.assertEqual([e.code() for e in errs], [KafkaError.MSG_SIZE_TOO_LARGE])
        self.put({"remove": ["message.max.bytes"]}, ["message.max.bytes"])
        self.assertEqual(self.produce("live-auto1", 1, size=3000), [])
        # A key set by a flag: persisted, but the flag wins now and at restart.
        st, _, doc = http(self.port, "PUT", "/v1/cluster/config",
                          body='{"upsert": {"log.index.interval.bytes": 1024}}')
        self.assertEqual((st, doc["shadowed"], doc["applied"]),
                         (200, ["log.index.interval.bytes"], []))
        st, _, doc = http(self.port, "GET", "/v1/cluster/config")
        idx = [e for e in doc["config"] if e["name"] == "log.index.interval.bytes"][0]
        self.assertEqual((idx["value"], idx["source"], idx["pending"]),
                         (8192, "command line", "1024"))

    def test_log_defaults_apply_to_open_partitions(self):
        a = AdminClient({"bootstrap.servers": self.b.bootstrap})
        fs = a.create_topics([NewTopic("live-seg", 1, 1), NewTopic("live-roll", 1, 1),
                              NewTopic("live-keep", 1, 1, config={"retention.bytes": "-1"})])
        for f in fs.values():
            f.result(30)
        for t in ("live-seg", "live-roll", "live-keep"):
            self.assertEqual(self.produce(t, 50), [])
            self.assertEqual(partition_state(self.port, t)["segments"], 1)
        # log.roll.ms: the open partitions' active segments roll on the next check.
        self.put({"upsert": {"log.roll.ms": 1}}, ["log.roll.ms"])
        wait_until("a roll by log.roll.ms",
                   lambda: partition_state(self.port, "live-roll")["segments"] >= 2, 30)
        self.put({"remove": ["log.roll.ms"]}, ["log.roll.ms"])
        # log.segment.bytes: the open partition rolls at the new size.
        self.put({"upsert": {"log.segment.bytes": "16KiB"}}, ["log.segment.bytes"])
        before = partition_state(self.port, "live-seg")["segments"]
        self.assertEqual(self.produce("live-seg", 400), [])
        self.assertGreaterEqual(partition_state(self.port, "live-seg")["segments"], before + 2)
        # log.retention.bytes: old segments go; a topic's own retention.bytes wins.
        self.assertEqual(self.produce("live-keep", 400), [])
        self.put({"upsert": {"log.retention.bytes": 20000}}, ["log.retention.bytes"])
        wait_until("retention by log.retention.bytes",
                   lambda: partition_state(self.port, "live-seg")["log_start_offset"] > 0, 30)
        self.assertLessEqual(partition_state(self.port, "live-seg")["size_bytes"], 20000 + 16384)
        self.assertEqual(partition_state(self.port, "live-keep")["log_start_offset"], 0)
        # log.retention.ms: everything older than 1 ms goes except the active segment.
        self.put({"remove": ["log.retention.bytes"], "upsert": {"log.retention.ms": 1}},
                 ["log.retention.bytes", "log.retention.ms"])
        wait_until("retention by log.retention.ms",
                   lambda: partition_state(self.port, "live-keep")["segments"] == 1, 30)
        self.assertGreater(partition_state(self.port, "live-keep")["log_start_offset"], 0)
        self.put({"remove": ["log.retention.ms", "log.segment.bytes"]},
                 ["log.retention.ms", "log.segment.bytes"])


def settled_metrics(port, names, timeout=60):
    """GET /metrics until the named (metric, labels) keep their values over
    two scrapes 0.5 s apart (what is in flight has finished); that scrape.
    The timeout only bounds the wait."""
    def values(m):
        return [metric(m, n, **labels) for n, labels in names]
    deadline = time.monotonic() + timeout
    m = parse_metrics(http(port, "GET", "/metrics")[2])
    while True:
        time.sleep(0.5)
        m2 = parse_metrics(http(port, "GET", "/metrics")[2])
        if values(m2) == values(m) or time.monotonic() > deadline:
            return m2
        m = m2


class AdminTieringMetricsTest(unittest.TestCase):
    """Upload, hydration, cache and object-store metrics and the storage
    answers follow what the broker does with a remote-enabled topic."""

    def remote_topic(self, *args):
        """A broker with topic tm (remote storage on, small segments and local
        retention) holding 3000 records, all sealed segments uploaded and the
        head gone from local disk. @return (broker, producer)."""
        b = Broker("-X", "log.retention.check.interval.ms=200", "-X", "log.segment.bytes=16384",
                   *args)
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        a.create_topics([NewTopic("tm", 1, 1, config={
            "remote.storage.enable": "true", "local.retention.bytes": "32768"})])["tm"].result(30)
        p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5, "batch.num.messages": 50})
        for i in range(3000):
            p.produce("tm", b"%06d-" % i + os.urandom(60), partition=0)  # incompressible
        self.assertEqual(p.flush(60), 0)
        wait_until("uploads and local retention", lambda: (
            self.storage_tm(b)["upload_lag_segments"] == 0
            and self.storage_tm(b)["local_start_offset"] > 0), 120)
        return b, p

    @staticmethod
    def storage_tm(b):
        return http(b.admin_port, "GET", "/v1/storage/topics/tm")[2]["partitions"][0]

    def replay(self, b, consumer):
        consumer.assign([TopicPartition("tm", 0, 0)])
        got = 0
        deadline = time.monotonic() + 60
        while got < 3000 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got += 1
        self.assertEqual(got, 3000)

    def test_cache_evictions(self):
        b, _ = self.remote_topic("-X", "strata.cache.bytes=65536")  # 32 KiB per shard
        try:
            c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "tm",
                          "enable.auto.commit": False})
            self.replay(b, c)
            c.close()
            # Chunks are written to the cache off the loop: wait (bounded) for the evictions.
            m = wait_metric(b.admin_port, "strata_tier_cache_evictions_total", 30)
            self.assertLessEqual(metric(m, "strata_tier_cache_bytes"), 65536)
            remote = http(b.admin_port, "GET", "/v1/storage")[2]["remote"]
            self.assertEqual(remote["cache_max_bytes"], 65536)
            self.assertLessEqual(remote["cache_bytes"], 65536)
        finally:
            b.close()

    def test_upload_hydration_and_object_store(self):
        b, p = self.remote_topic()
        port = b.admin_port

        def storage_tm():
            return self.storage_tm(b)

        try:
            m = parse_metrics(http(port, "GET", "/metrics")[2])
            segs = metric(m, "strata_tier_uploaded_segments_total")
            self.assertGreaterEqual(segs, 2)
            self.assertGreater(metric(m, "strata_tier_uploaded_bytes_total"), 0)
            puts = metric(m, "strata_object_store_requests_total", op="put")
            self.assertGreaterEqual(puts, segs)
            self.assertEqual(metric(m, "strata_object_store_request_latency_seconds_count",
                                    op="put"), puts)
            self.assertEqual(metric(m, "strata_object_store_errors_total", op="put"), 0)
            self.assertEqual(metric(m, "strata_tier_upload_lag_segments", topic="tm",
                                    partition="0"), 0)
            part = storage_tm()
            self.assertEqual(metric(m, "strata_tier_uploaded_offset", topic="tm", partition="0"),
                             part["uploaded_offset"])
            self.assertGreater(part["uploaded_offset"], 0)
            self.assertEqual(part["remote_segments"], segs)
            self.assertEqual(part["remote_bytes"], metric(m, "strata_tier_uploaded_bytes_total"))
            st, _, doc = http(port, "GET", "/v1/storage")
            self.assertTrue(doc["remote"]["enabled"])
            self.assertEqual(doc["remote"]["uploaded_segments"], segs)
            self.assertIsNone(doc["remote"]["last_error"])
            self.assertIsNone(doc["remote"]["cache_hit_rate"])  # nothing read back yet
            t = [x for x in doc["topics"] if x["topic"] == "tm"][0]
            self.assertEqual((t["remote_segments"], t["upload_lag_segments"]), (segs, 0))
            self.assertIsNone(t["uploaded_offset"])  # per partition only

            # A replay from offset 0 reads the archive: hydration, misses, GETs.
            c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "tm",
                          "enable.auto.commit": False})
            self.replay(b, c)
            # A download is counted when its GET starts, the GET when it ends:
            # compare them once the read-ahead that outlives the replay is done.
            m1 = settled_metrics(port, [("strata_tier_hydration_downloads_total", {}),
                                        ("strata_object_store_requests_total", {"op": "get"})])
            self.replay(b, c)
            c.close()
            text = http(port, "GET", "/metrics")[2]
            check_format(self, text)
            m2 = parse_metrics(text)
            self.assertGreater(metric(m1, "strata_tier_hydration_requests_total"), 0)
            self.assertGreater(metric(m1, "strata_tier_hydration_bytes_total"), 0)
            self.assertGreater(metric(m1, "strata_tier_hydration_downloads_total"), 0)
            self.assertGreater(metric(m1, "strata_tier_hydration_downloaded_bytes_total"), 0)
            self.assertGreater(metric(m1, "strata_tier_cache_misses_total"), 0)
            self.assertGreater(metric(m1, "strata_tier_cache_bytes"), 0)
            self.assertGreater(metric(m1, "strata_tier_hydration_latency_seconds_count"), 0)
            self.assertGreaterEqual(metric(m1, "strata_object_store_requests_total", op="get"),
                                    metric(m1, "strata_tier_hydration_downloads_total"))
            self.assertGreater(metric(m1, "strata_object_store_request_latency_seconds_count",
                                      op="get"), 0)
            # The second replay finds the chunks in the cache.
            self.assertGreater(metric(m2, "strata_tier_cache_hits_total"),
                               metric(m1, "strata_tier_cache_hits_total"))
            self.assertGreater(metric(m2, "strata_tier_hydration_requests_total"),
                               metric(m1, "strata_tier_hydration_requests_total"))
            self.assertGreater(http(port, "GET", "/v1/storage")[2]["remote"]["cache_hit_rate"], 0)

            # The archive refuses writes (a file where the partition's folder was):
            # failed puts, upload errors, a lag, and the store's last error.
            pdir = glob.glob(os.path.join(b.data, "archive", "*", "tm", "0"))[0]
            os.rename(pdir, pdir + ".away")
            open(pdir, "w").close()
            for i in range(400):
                p.produce("tm", b"z" * 60, partition=0)
            self.assertEqual(p.flush(60), 0)
            # The store counts the failed PUT when it ends, the upload its failure on the
            # shard's loop after it: wait for the later one (a scrape between them saw 0).
            m3 = wait_metric(port, "strata_tier_upload_errors_total", 60)
            self.assertGreater(metric(m3, "strata_object_store_errors_total", op="put"), 0)
            self.assertGreater(metric(m3, "strata_tier_upload_lag_segments", topic="tm",
                                      partition="0"), 0)
            self.assertGreater(metric(m3, "strata_tier_upload_lag_bytes", topic="tm",
                                      partition="0"), 0)
            remote = http(port, "GET", "/v1/storage")[2]["remote"]
            self.assertIn("tm", remote["last_error"])
            self.assertGreater(remote["upload_lag_segments"], 0)
            # Repaired: the retries upload everything.
            os.unlink(pdir)
            os.rename(pdir + ".away", pdir)
            wait_until("uploads after the repair",
                       lambda: storage_tm()["upload_lag_segments"] == 0, 120)
            rc, out = b.stop()
            self.assertEqual(rc, 0, out)
        finally:
            b.close()


class AdminShutdownTest(unittest.TestCase):
    def test_sigterm_while_scraping(self):
        """Requests in flight on the shards when the broker stops: a clean exit."""
        import threading
        b = Broker(smp=2)
        stop = threading.Event()
        errors = []

        def scrape():
            while not stop.is_set():
                try:
                    s = socket.create_connection(("127.0.0.1", b.admin_port), timeout=5)
                    s.sendall(b"GET /metrics HTTP/1.1\r\n\r\nGET /v1/storage HTTP/1.1\r\n\r\n")
                    s.recv(65536)
                    s.close()
                except OSError:
                    pass  # refused or reset once the broker stops
                except Exception as e:  # noqa: BLE001
                    errors.append(e)

        threads = [threading.Thread(target=scrape) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        try:
            rc, out = b.stop()
        finally:
            stop.set()
            for t in threads:
                t.join()
            b.close()
        self.assertEqual(rc, 0, out)
        self.assertIn("stopped cleanly", out)
        self.assertEqual(errors, [])


class AdminTokenTest(unittest.TestCase):
    def test_bearer_token(self):
        import tempfile
        tok = tempfile.NamedTemporaryFile("w", suffix=".token", delete=False)
        tok.write("  s3cret \n")
        tok.close()
        b = Broker("-X", "strata.admin.token.file=" + tok.name, smp=1)
        try:
            port = b.admin_port
            st, hdrs, doc = http(port, "GET", "/v1/cluster")
            self.assertEqual((st, doc["error"]), (401, "unauthorized"))
            self.assertIn("Bearer", hdrs["WWW-Authenticate"])
            st, _, _ = http(port, "GET", "/metrics", headers={"Authorization": "Bearer nope"})
            self.assertEqual(st, 401)
            st, _, doc = http(port, "GET", "/v1/cluster/config",
                              headers={"Authorization": "Bearer s3cret"})
            self.assertEqual(st, 200)
            entry = [e for e in doc["config"] if e["name"] == "strata.admin.token.file"][0]
            self.assertEqual(entry["value"], tok.name)  # the path, never the secret
            self.assertNotIn("s3cret", json.dumps(doc))
            st, _, _ = http(port, "GET", "/v1/status/ready")  # probes need no token
            self.assertEqual(st, 200)
        finally:
            rc, out = b.stop()
            b.close()
            os.unlink(tok.name)
            self.assertEqual(rc, 0, out)
            self.assertNotIn("s3cret", out)

    def test_unreadable_token_file_stops_start_up(self):
        b = Broker("-X", "strata.admin.token.file=/nonexistent/token", smp=1, start=False)
        try:
            p = subprocess.run([os.environ.get("STRATAD", "build/tools/stratad"), *b.args],
                               capture_output=True, text=True, timeout=60)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("strata.admin.token.file: cannot read /nonexistent/token",
                          p.stdout + p.stderr)
        finally:
            b.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
