#!/usr/bin/python3
"""The `strata` CLI against a real stratad: every implemented command, its text and JSON
output and its exit codes, including the failures (unreachable broker, unknown topic, bad
flag values). STRATA is the CLI binary, STRATAD the broker."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker, free_port  # noqa: E402

STRATA = os.environ.get("STRATA", "build/tools/strata")


# The broker may hold a JoinGroup that follows MEMBER_ID_REQUIRED for up to the session
# timeout (seen with --smp 2); a short one keeps group tests fast.
FAST_JOIN = ["-X", "session.timeout.ms=6000"]


def dead_addr():
    """A loopback address where nothing listens."""
    return "127.0.0.1:%d" % free_port()


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.broker = Broker(smp=2)
        cls.home = tempfile.TemporaryDirectory(prefix="strata-cli-home-")

    @classmethod
    def tearDownClass(cls):
        rc, out = cls.broker.stop()
        cls.broker.close()
        cls.home.cleanup()

    def run_cli(self, *args, input=None, brokers=True, env=None, timeout=60):
        e = dict(os.environ)
        e.pop("STRATA_BROKERS", None)
        e.pop("STRATA_ADMIN_URL", None)
        e["HOME"] = self.home.name
        if env:
            e.update(env)
        cmd = [STRATA]
        if brokers:
            cmd += ["--brokers", self.broker.bootstrap]
        p = subprocess.run(cmd + list(args), input=input, capture_output=True, text=True,
                           env=e, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def ok(self, *args, **kw):
        rc, out, err = self.run_cli(*args, **kw)
        self.assertEqual(rc, 0, "strata %s failed: %s%s" % (" ".join(args), out, err))
        return out

    def json(self, *args, **kw):
        return json.loads(self.ok(*args, "--format", "json", **kw))

    def fails(self, rc_expected, needle, *args, **kw):
        rc, out, err = self.run_cli(*args, **kw)
        self.assertEqual(rc, rc_expected, "strata %s: rc %d out %r err %r" %
                         (" ".join(args), rc, out, err))
        self.assertIn("strata: ", err)
        self.assertIn(needle, err)
        return err

    def jsonl(self, out):
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    # ---- version, help, completion, stubs ----

    def test_version(self):
        self.assertRegex(self.ok("version", brokers=False), r"^strata \d+\.\d+\.\d+ \(librdkafka")
        v = self.json("version", brokers=False)
        self.assertIn("version", v)
        self.assertIn("librdkafka", v)

    def test_help_everywhere(self):
        cmds = [[], ["version"], ["start"], ["completion"], ["topic"], ["group"], ["cluster"],
                ["topic", "create"], ["topic", "list"], ["topic", "describe"],
                ["topic", "delete"], ["topic", "add-partitions"], ["topic", "alter-config"],
                ["topic", "trim-prefix"], ["topic", "produce"], ["topic", "consume"],
                ["group", "list"], ["group", "describe"], ["group", "seek"], ["group", "delete"],
                ["group", "offset-delete"], ["cluster", "info"], ["cluster", "health"],
                ["cluster", "status"], ["cluster", "config"], ["storage"], ["storage", "status"],
                ["storage", "recover"], ["archive"]]
        for c in cmds:
            out = self.ok(*c, "--help", brokers=False)
            self.assertIn("Usage: strata", out, c)
            self.assertIn("Examples", out, c)
        rc, out, _ = self.run_cli(brokers=False)
        self.assertEqual(rc, 2)
        self.assertIn("Usage: strata", out)
        self.fails(2, "unknown command", "nosuch", brokers=False)
        self.fails(2, "unknown command", "topic", "nosuch", brokers=False)

    def test_completion_bash(self):
        out = self.ok("completion", "bash", brokers=False)
        self.assertIn("complete -F _strata strata", out)
        p = subprocess.run(["bash", "-n"], input=out, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run(["bash", "-c", out + "\nCOMP_WORDS=(strata topic cr); COMP_CWORD=2;"
                            " _strata; echo ${COMPREPLY[@]}"], capture_output=True, text=True)
        self.assertEqual(p.stdout.strip(), "create")
        self.fails(2, "unsupported shell", "completion", "fish", brokers=False)

    def test_archive_not_available(self):
        self.fails(2, "not available yet", "archive", "ls", brokers=False)
        self.fails(2, "not available yet", "archive", "cat", "t", "0", brokers=False)

    # ---- bad flags and unreachable broker ----

    def test_bad_flag_values(self):
        self.fails(2, "--format", "--format", "xml", "topic", "list")
        self.fails(2, "--timeout", "--timeout", "soon", "topic", "list")
        self.fails(2, "-X", "-X", "novalue", "topic", "list")
        self.fails(1, "bad client setting", "-X", "no.such.setting=1", "topic", "list")
        self.fails(2, "--partitions", "topic", "create", "x", "-p", "abc")
        self.fails(2, "--partitions", "topic", "create", "x", "-p", "0")
        self.fails(2, "--topic-config", "topic", "create", "x", "-c", "novalue")
        self.fails(2, "--offset", "topic", "consume", "x", "-o", "bogus")
        self.fails(2, "--offset", "topic", "consume", "x", "-o", "@yesterday")
        self.fails(2, "--num", "topic", "consume", "x", "-n", "-3")
        self.fails(2, "--compression", "topic", "produce", "x", "-z", "brotli")
        self.fails(2, "--acks", "topic", "produce", "x", "--acks", "2")
        self.fails(2, "format field", "topic", "produce", "x", "-f", "%q\\n")
        self.fails(2, "delimiter", "topic", "produce", "x", "-f", "%v")
        self.fails(2, "--offset", "topic", "trim-prefix", "x", "-o", "-5")
        self.fails(2, "--num", "topic", "add-partitions", "x", "-n", "none")
        self.fails(2, "--to", "group", "seek", "g", "--to", "later")
        self.fails(2, "--group", "topic", "consume", "x", "-g", "g", "-o", "+3")
        self.fails(2, "needs", "topic", "describe")
        self.fails(2, "bad flag", "topic", "list", "--bogus")
        self.fails(2, "--smp", "start", "--smp", "zero", brokers=False)
        self.fails(2, "after --", "start", "-X", "log.segment.bytes=1MiB", brokers=False)

    def test_unreachable_broker(self):
        dead = dead_addr()
        for args in (["topic", "list"], ["topic", "create", "x"], ["topic", "describe", "x"],
                     ["topic", "consume", "x", "-n", "1"], ["group", "list"],
                     ["cluster", "info"], ["cluster", "config", "list"]):
            t0 = time.monotonic()
            rc, out, err = self.run_cli("--brokers", dead, "--timeout", "2s", *args,
                                        brokers=False, timeout=30)
            self.assertEqual(rc, 1, (args, out, err))
            self.assertTrue("cannot reach the cluster" in err or "no answer" in err, (args, err))
            self.assertIn(dead, err)
            self.assertLess(time.monotonic() - t0, 15, args)
        rc, out, err = self.run_cli("--brokers", dead, "--timeout", "2s", "topic", "produce",
                                    "x", input="a\n", brokers=False, timeout=30)
        self.assertEqual(rc, 1)
        self.assertIn("cannot reach the cluster", err)

    def test_unreachable_admin_api(self):
        url = "http://" + dead_addr()
        for sub in ("health", "status"):
            err = self.fails(1, "cannot reach the admin API", "--admin-url", url, "--timeout",
                             "2s", "cluster", sub)
            self.assertIn(url, err)

    # ---- topics ----

    def test_topic_lifecycle(self):
        r = self.json("topic", "create", "life-a", "life-b", "-p", "2", "-c",
                      "retention.ms=123456")
        self.assertEqual(sorted(x["topic"] for x in r), ["life-a", "life-b"])
        self.assertTrue(all(x["error"] is None for x in r))
        self.assertIn("life-a", self.ok("topic", "list"))
        names = {t["name"]: t for t in self.json("topic", "list")}
        self.assertEqual(names["life-a"]["partitions"], 2)
        # create again: per-topic error, exit 1
        rc, out, err = self.run_cli("topic", "create", "life-a", "--format", "json")
        self.assertEqual(rc, 1)
        self.assertIsNotNone(json.loads(out)[0]["error"])

        d = self.json("topic", "describe", "life-a")
        self.assertEqual(d["partitions"], 2)
        cfg = {c["key"]: c for c in d["configs"]}
        self.assertEqual(cfg["retention.ms"]["value"], "123456")
        self.assertEqual(cfg["retention.ms"]["source"], "dynamic-topic")
        self.assertEqual([p["partition"] for p in d["partition_details"]], [0, 1])
        text = self.ok("topic", "describe", "life-a")
        for section in ("SUMMARY", "CONFIGS", "PARTITIONS", "HIGH-WATERMARK"):
            self.assertIn(section, text)

        self.json("topic", "add-partitions", "life-a", "-n", "2")
        self.assertEqual(self.json("topic", "describe", "life-a", "-p")["partitions"], 4)

        # alter-config: set one, keep the other, then delete
        self.ok("topic", "alter-config", "life-a", "--set", "segment.ms=3600000")
        cfg = {c["key"]: c for c in self.json("topic", "describe", "life-a", "-c")["configs"]}
        self.assertEqual(cfg["segment.ms"]["value"], "3600000")
        self.assertEqual(cfg["retention.ms"]["value"], "123456")
        self.ok("topic", "alter-config", "life-a", "--delete", "retention.ms")
        cfg = {c["key"]: c for c in self.json("topic", "describe", "life-a", "-c")["configs"]}
        self.assertNotEqual(cfg["retention.ms"]["source"], "dynamic-topic")
        self.assertEqual(cfg["segment.ms"]["value"], "3600000")
        rc, out, err = self.run_cli("topic", "alter-config", "life-a", "--set",
                                    "retention.ms=notanumber")
        self.assertEqual(rc, 1, (out, err))

        r = self.json("topic", "delete", "life-a", "life-b")
        self.assertTrue(all(x["error"] is None for x in r))
        self.assertNotIn("life-a", [t["name"] for t in self.json("topic", "list")])

    def test_unknown_topic(self):
        self.fails(1, "unknown topic 'nope-1'", "topic", "describe", "nope-1")
        self.fails(1, "unknown topic 'nope-1'", "topic", "consume", "nope-1", "-n", "1")
        self.fails(1, "unknown topic 'nope-1'", "topic", "trim-prefix", "nope-1", "-o", "1")
        rc, out, _ = self.run_cli("topic", "add-partitions", "nope-1", "-n", "1")
        self.assertEqual(rc, 1)
        self.assertIn("unknown topic", out)
        rc, out, _ = self.run_cli("topic", "delete", "nope-1", "--format", "json")
        self.assertEqual(rc, 1)
        self.assertIsNotNone(json.loads(out)[0]["error"])
        rc, out, _ = self.run_cli("topic", "alter-config", "nope-1", "--set", "segment.ms=1")
        self.assertEqual(rc, 1)
        self.assertIn("unknown topic", out)
        self.fails(1, "unknown topic", "group", "seek", "g", "--to", "start", "--topics",
                   "nope-1")

    # ---- produce and consume ----

    def test_produce_consume(self):
        self.ok("topic", "create", "pc", "-p", "3")
        out = self.ok("topic", "produce", "pc", "-p", "1", input="one\ntwo\nthree\n")
        self.assertEqual(out.count("Produced to partition 1"), 3)
        self.assertIn("at offset 2", out)
        r = self.jsonl(self.ok("topic", "produce", "pc", "-p", "2", "-k", "K", "-H", "h1=v1",
                               "-H", "h2=v2", "-z", "zstd", "--acks", "1", "--format", "json",
                               input="x\ny\n"))
        self.assertEqual([(x["partition"], x["offset"]) for x in r], [(2, 0), (2, 1)])
        self.ok("topic", "produce", "pc", "-f", "%k=%v;%p\\n", "--acks", "all", "-q",
                input="a=1;0\nb=2;0\n")
        # whole topic from start to the current end, JSON records
        recs = self.jsonl(self.ok("topic", "consume", "pc", "-o", "start:end"))
        self.assertEqual(len(recs), 7)
        byp = {}
        for x in recs:
            byp.setdefault(x["partition"], []).append(x)
        self.assertEqual([x["value"] for x in byp[1]], ["one", "two", "three"])
        self.assertEqual([(x["key"], x["value"]) for x in byp[0]], [("a", "1"), ("b", "2")])
        self.assertIsNone(byp[1][0]["key"])
        self.assertEqual(byp[2][0]["key"], "K")
        self.assertEqual(byp[2][0]["headers"], [{"key": "h1", "value": "v1"},
                                                {"key": "h2", "value": "v2"}])
        self.assertGreater(byp[2][0]["timestamp"], 1600000000000)
        # formats
        out = self.ok("topic", "consume", "pc", "-p", "2", "-o", "start:end", "-f",
                      "%t|%p|%o|%k|%v|%h|%K|%V\\n")
        self.assertEqual(out.splitlines(), ["pc|2|0|K|x|h1=v1,h2=v2|1|1",
                                            "pc|2|1|K|y|h1=v1,h2=v2|1|1"])
        # offsets: +N, -N, exact, -n, @time
        f = ["-p", "1", "-f", "%v\\n"]
        self.assertEqual(self.ok("topic", "consume", "pc", "-o", "+1:end", *f).split(),
                         ["two", "three"])
        self.assertEqual(self.ok("topic", "consume", "pc", "-o", "-1:end", *f).split(),
                         ["three"])
        self.assertEqual(self.ok("topic", "consume", "pc", "-o", "1", "-n", "1", *f).split(),
                         ["two"])
        self.assertEqual(self.ok("topic", "consume", "pc", "-o", "start", "-n", "2", *f).split(),
                         ["one", "two"])
        self.assertEqual(self.ok("topic", "consume", "pc", "-o", "@0", "-n", "1", *f).split(),
                         ["one"])
        self.assertEqual(self.ok("topic", "consume", "pc", "-o", "@-1h:end", *f).split(),
                         ["one", "two", "three"])
        self.assertEqual(self.ok("topic", "consume", "pc", "-o", "end:end", *f), "")
        future = str(int(time.time() * 1000) + 3600000)
        self.assertEqual(self.ok("topic", "consume", "pc", "-o", "@" + future + ":end", *f), "")
        self.fails(1, "unknown partition", "topic", "consume", "pc", "-p", "9", "-n", "1")
        self.fails(1, "does not match the format", "topic", "produce", "pc", "-f", "%k=%v\\n",
                   input="novalue\n")
        # -o end waits for new records: produce while consuming
        cons = subprocess.Popen([STRATA, "--brokers", self.broker.bootstrap, "topic", "consume",
                                 "pc", "-p", "1", "-o", "end", "-n", "1", "-f", "%v\\n"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while cons.poll() is None and time.monotonic() < deadline:
            # keep producing until the consumer (which starts at the end) has seen one
            self.ok("topic", "produce", "pc", "-p", "1", "-q", input="four\n")
            time.sleep(0.5)
        out, err = cons.communicate(timeout=30)
        self.assertEqual((cons.returncode, out), (0, "four\n"), err)
        # binary values stay valid JSON
        r = subprocess.run([STRATA, "--brokers", self.broker.bootstrap, "topic", "produce", "pc",
                            "-p", "0", "-q"], input=b"caf\xc3\xa9 \xff\x01\n",
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        rec = self.jsonl(self.ok("topic", "consume", "pc", "-p", "0", "-o", "-1:end"))[0]
        self.assertEqual(rec["value"], "caf\u00e9 \u00ff\u0001")

    def test_produce_every_codec(self):
        codecs = ["none", "gzip", "snappy", "lz4", "zstd"]
        for z in codecs:
            self.ok("topic", "produce", "codecs", "-p", "0", "-q", "-z", z, input="v-%s\n" % z)
        out = self.ok("topic", "consume", "codecs", "-o", "start:end", "-f", "%v\\n")
        self.assertEqual(out.split(), ["v-" + z for z in codecs])

    def test_trim_prefix(self):
        self.ok("topic", "create", "trim", "-p", "2")
        self.ok("topic", "produce", "trim", "-p", "0", "-q", input="".join("r%d\n" % i
                                                                         for i in range(10)))
        r = self.json("topic", "trim-prefix", "trim", "-o", "4", "-p", "0")
        self.assertEqual(r, [{"topic": "trim", "partition": 0, "new_start_offset": 4,
                              "error": None}])
        d = self.json("topic", "describe", "trim", "-p")["partition_details"]
        self.assertEqual((d[0]["log_start_offset"], d[0]["high_watermark"]), (4, 10))
        self.assertEqual(self.ok("topic", "consume", "trim", "-p", "0", "-o", "start", "-n", "1",
                                 "-f", "%o %v\\n"), "4 r4\n")
        out = self.ok("topic", "trim-prefix", "trim", "-o", "end")
        self.assertIn("NEW-START-OFFSET", out)
        d = self.json("topic", "describe", "trim", "-p")["partition_details"]
        self.assertEqual(d[0]["log_start_offset"], 10)
        rc, out, err = self.run_cli("topic", "trim-prefix", "trim", "-o", "99", "-p", "1",
                                    "--format", "json")
        self.assertEqual(rc, 1)
        self.assertIsNotNone(json.loads(out)[0]["error"])
        self.fails(1, "unknown partition", "topic", "trim-prefix", "trim", "-o", "1", "-p", "7")

    # ---- groups ----

    def test_groups(self):
        self.ok("topic", "create", "gt", "-p", "2")
        self.ok("topic", "produce", "gt", "-p", "0", "-q", input="a\nb\nc\nd\n")
        self.ok("topic", "produce", "gt", "-p", "1", "-q", input="e\nf\n")
        out = self.ok(*FAST_JOIN, "topic", "consume", "gt", "-g", "cli-g", "-n", "3", "-f",
                      "%p:%o\\n", timeout=120)
        self.assertEqual(len(out.split()), 3)
        groups = {g["group"]: g for g in self.json("group", "list")}
        self.assertIn("cli-g", groups)
        self.assertEqual(groups["cli-g"]["state"], "Empty")
        self.assertIn("cli-g", self.ok("group", "list"))
        d = self.json("group", "describe", "cli-g")[0]
        self.assertEqual(d["state"], "Empty")
        total_lag = sum(p["lag"] for p in d["partitions"])
        committed = sum(p["current_offset"] for p in d["partitions"])
        self.assertEqual(committed, 3)
        self.assertEqual(committed + total_lag,
                         sum(p["log_end_offset"] for p in d["partitions"]))
        self.assertIn("LAG", self.ok("group", "describe", "cli-g"))
        # a second run continues where the group stopped
        out = self.ok(*FAST_JOIN, "topic", "consume", "gt", "-g", "cli-g", "-n", "3", "-f",
                      "%v\\n", timeout=120)
        self.assertEqual(len(out.split()), 3)
        # seek back to the start of both partitions
        r = self.json("group", "seek", "cli-g", "--to", "start", "--topics", "gt")
        self.assertEqual(r, [{"group": "cli-g", "error": None}])
        d = self.json("group", "describe", "cli-g")[0]
        self.assertEqual(sorted((p["partition"], p["current_offset"]) for p in d["partitions"]),
                         [(0, 0), (1, 0)])
        self.ok("group", "seek", "cli-g", "--to", "-1")
        d = self.json("group", "describe", "cli-g")[0]
        self.assertEqual(sorted((p["partition"], p["current_offset"]) for p in d["partitions"]),
                         [(0, 3), (1, 1)])
        # offset-delete one partition
        self.ok("group", "offset-delete", "cli-g", "--topic", "gt:1")
        d = self.json("group", "describe", "cli-g")[0]
        self.assertEqual([p["partition"] for p in d["partitions"]], [0])
        self.fails(2, "--topic", "group", "offset-delete", "cli-g", "--topic", "gt:x")
        # delete
        r = self.json("group", "delete", "cli-g")
        self.assertEqual(r, [{"group": "cli-g", "error": None}])
        self.assertNotIn("cli-g", [g["group"] for g in self.json("group", "list")])
        rc, out, err = self.run_cli("group", "delete", "cli-g")
        self.assertEqual(rc, 1, (out, err))
        self.fails(1, "no committed offsets", "group", "seek", "never-g", "--to", "start")

    def test_group_describe_live_member(self):
        self.ok("topic", "create", "live", "-p", "2")
        self.ok("topic", "produce", "live", "-p", "0", "-q", input="a\nb\n")
        cons = subprocess.Popen([STRATA, "--brokers", self.broker.bootstrap, *FAST_JOIN, "topic",
                                 "consume", "live", "-g", "live-g", "-f", "%v\\n"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            got = [cons.stdout.readline(), cons.stdout.readline()]
            self.assertEqual(got, ["a\n", "b\n"])
            deadline = time.monotonic() + 60
            d = None
            while time.monotonic() < deadline:
                d = self.json("group", "describe", "live-g")[0]
                if d["state"] == "Stable" and len(d["partitions"]) == 2 and \
                        d["partitions"][0]["member_id"]:
                    break
                time.sleep(0.5)
            self.assertEqual(d["members"], 1, d)
            self.assertEqual([p["partition"] for p in d["partitions"]], [0, 1])
            self.assertTrue(all(p["client_id"] == "strata-cli" for p in d["partitions"]))
            self.assertEqual(d["partitions"][0]["log_end_offset"], 2)
            self.assertIn("strata-cli", self.ok("group", "describe", "live-g"))
        finally:
            cons.send_signal(signal.SIGTERM)
            out, err = cons.communicate(timeout=60)
        self.assertEqual(cons.returncode, 0, err)
        self.assertEqual(out, "")
        # SIGTERM commits what was consumed
        d = self.json("group", "describe", "live-g")[0]
        self.assertEqual({p["partition"]: p["current_offset"] for p in d["partitions"]}, {0: 2})

    # ---- cluster ----

    def test_cluster_info_and_config(self):
        i = self.json("cluster", "info")
        self.assertTrue(i["cluster_id"])
        self.assertEqual(len(i["brokers"]), 1)
        self.assertEqual(i["brokers"][0]["port"], self.broker.port)
        self.assertIn("BROKERS", self.ok("cluster", "info"))
        cfg = {c["key"]: c for c in self.json("cluster", "config", "list")}
        self.assertIn("log.retention.ms", cfg)
        v = self.ok("cluster", "config", "get", "log.retention.ms").strip()
        self.assertEqual(v, cfg["log.retention.ms"]["value"])
        self.fails(1, "unknown broker config", "cluster", "config", "get", "no.such.key")
        self.fails(2, "use 'strata cluster config", "cluster", "config", "get")
        self.fails(2, "use 'strata cluster config", "cluster", "config", "set", "k")

    def admin_url(self):
        return "http://" + self.broker.args[self.broker.args.index("--admin-listener") + 1]

    def test_cluster_health_status(self):
        a = ["--admin-url", self.admin_url()]
        self.assertEqual(self.json(*a, "cluster", "health"),
                         {"healthy": True, "live": True, "ready": True})
        self.assertIn("Healthy:  true", self.ok(*a, "cluster", "health"))
        st = self.json(*a, "cluster", "status")
        self.assertEqual(st["listeners"]["kafka"], self.broker.bootstrap)
        self.assertEqual(st["shards"], 2)
        out = self.ok(*a, "cluster", "status")
        self.assertRegex(out, r"listeners\.kafka +%s" % self.broker.bootstrap)
        # the admin URL also comes from the environment
        self.ok("cluster", "health", env={"STRATA_ADMIN_URL": self.admin_url()})

    def test_cluster_config_set_via_admin_api(self):
        a = ["--admin-url", self.admin_url()]
        r = self.json(*a, "cluster", "config", "set", "log.retention.ms", "86400000")
        self.assertEqual(r["key"], "log.retention.ms")
        self.assertIn("persisted", self.ok(*a, "cluster", "config", "set",
                                           "log.retention.ms", "90000000"))
        self.fails(1, "invalid_config", *a, "cluster", "config", "set", "log.retention.ms",
                   "abc")
        self.fails(1, "no.such.key", *a, "cluster", "config", "set", "no.such.key", "1")
        self.assertIn("Removed", self.ok(*a, "cluster", "config", "delete", "log.retention.ms"))
        self.fails(1, "cannot reach the admin API", "--admin-url", "http://" + dead_addr(),
                   "--timeout", "2s", "cluster", "config", "set", "log.retention.ms", "1")

    def test_storage_status(self):
        a = ["--admin-url", self.admin_url()]
        self.ok("topic", "create", "stor", "-p", "2")
        self.ok("topic", "produce", "stor", "-p", "1", "-q", input="a\nb\n")
        j = self.json(*a, "storage", "status")
        self.assertIn("stor", [t["topic"] for t in j["topics"]])
        out = self.ok(*a, "storage", "status")
        for word in ("LOCAL", "REMOTE", "UPLOAD-LAG-BYTES", "stor"):
            self.assertIn(word, out)
        t = self.json(*a, "storage", "status", "stor")
        self.assertEqual([p["end_offset"] for p in t["partitions"]], [0, 2])
        self.assertIn("LOCAL-START-OFFSET", self.ok(*a, "storage", "status", "stor"))
        self.fails(1, "unknown topic 'nope-2'", *a, "storage", "status", "nope-2")
        rc, out, err = self.run_cli(*a, "storage", "recover")
        self.assertIn(rc, (0, 2), err)  # 2: the broker says recovery is not built yet
        if rc == 2:
            self.assertIn("not_implemented", err)
        self.fails(1, "cannot reach the admin API", "--admin-url", "http://" + dead_addr(),
                   "--timeout", "2s", "storage", "status")

    # ---- configuration sources ----

    def test_profile_and_env(self):
        cfgdir = os.path.join(self.home.name, ".config", "strata")
        os.makedirs(cfgdir, exist_ok=True)
        path = os.path.join(cfgdir, "strata.yaml")
        try:
            with open(path, "w") as f:
                f.write("# profile\nbrokers:\n  - %s\nadmin_url: http://%s\n"
                        % (self.broker.bootstrap, dead_addr()))
            self.assertIn("NAME", self.ok("topic", "list", brokers=False))
            self.fails(1, "cannot reach the admin API", "--timeout", "2s", "cluster", "health",
                       brokers=False)
            with open(path, "w") as f:
                f.write("brokers: %s\n" % dead_addr())
            # env beats the profile, the flag beats both
            self.ok("topic", "list", brokers=False,
                    env={"STRATA_BROKERS": self.broker.bootstrap})
            self.fails(1, "cannot reach the cluster", "--timeout", "2s", "topic", "list",
                       brokers=False)
            self.ok("--timeout", "2s", "topic", "list",
                    env={"STRATA_BROKERS": dead_addr()})  # --brokers from run_cli wins
        finally:
            os.unlink(path)

    def test_x_settings(self):
        self.ok("-X", "client.id=cli-x-test", "-X", "socket.keepalive.enable=true", "topic",
                "list")


class StartTest(unittest.TestCase):
    def test_start_runs_stratad(self):
        port, admin = free_port(), free_port()
        with tempfile.TemporaryDirectory(prefix="strata-cli-start-") as d:
            env = dict(os.environ)
            env.pop("STRATAD", None)  # found next to the strata binary
            if os.path.dirname(os.path.abspath(STRATA)) != \
                    os.path.dirname(os.path.abspath(os.environ.get("STRATAD", STRATA))):
                env["STRATAD"] = os.environ["STRATAD"]
            p = subprocess.Popen([STRATA, "start", "-d", os.path.join(d, "data"), "--",
                                  "--listeners", "127.0.0.1:%d" % port,
                                  "--admin-listener", "127.0.0.1:%d" % admin],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 env=env)
            try:
                deadline = time.monotonic() + 30
                lines = []
                while time.monotonic() < deadline:
                    line = p.stdout.readline()
                    if not line:
                        break
                    lines.append(line)
                    if "started" in line:
                        break
                self.assertIn("started", "".join(lines))
                self.assertIn("shards=1", "".join(lines))
                b = ["--brokers", "127.0.0.1:%d" % port]
                r = subprocess.run([STRATA, *b, "topic", "produce", "s1", "-q"], input="hi\n",
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
                r = subprocess.run([STRATA, *b, "topic", "consume", "s1", "-n", "1", "-f",
                                    "%v\\n"], capture_output=True, text=True, timeout=60)
                self.assertEqual(r.stdout, "hi\n", r.stderr)
                self.assertTrue(os.path.isdir(os.path.join(d, "data")))
            finally:
                p.send_signal(signal.SIGTERM)
                p.communicate(timeout=60)
            self.assertEqual(p.returncode, 0)

    def test_start_without_stratad(self):
        env = dict(os.environ, STRATAD="/nonexistent/stratad")
        r = subprocess.run([STRATA, "start"], capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot find stratad", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
