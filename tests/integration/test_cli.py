#!/usr/bin/python3
"""The `strata` CLI against a real stratad: every implemented command, its text and JSON
output and its exit codes, including the failures (unreachable broker, unknown topic, bad
flag values). STRATA is the CLI binary, STRATAD the broker."""
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker, free_port  # noqa: E402
from test_tiering import s3_env, start_s3, stop_s3  # noqa: E402

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
                ["topic", "describe-storage"], ["profile"], ["profile", "create"],
                ["profile", "use"], ["profile", "list"], ["profile", "show"],
                ["profile", "delete"],
                ["group", "list"], ["group", "describe"], ["group", "seek"], ["group", "delete"],
                ["group", "offset-delete"], ["cluster", "info"], ["cluster", "health"],
                ["cluster", "status"], ["cluster", "config"], ["cluster", "partitions"],
                ["cluster", "metadata"], ["storage"], ["storage", "status"],
                ["storage", "recover"], ["archive"], ["archive", "ls"], ["archive", "cat"],
                ["archive", "verify"]]
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
        self.fails(2, "unsupported shell", "completion", "tcsh", brokers=False)

    def complete(self, *words, home=None, shell="bash"):
        """What the bash (or fish) script offers for `strata WORDS...` (the last word is
        completed)."""
        script = self.ok("completion", shell, brokers=False)
        env = dict(os.environ, HOME=home or self.home.name)
        if shell == "fish":  # a real fish asked for the line's completions
            env["STRATA_LINE"] = " ".join(("strata",) + words)
            p = subprocess.run(["fish", "--no-config", "-c", script + '\ncomplete -C "$STRATA_LINE"'],
                               capture_output=True, text=True, env=env)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stderr, "")
            return sorted(line.split("\t")[0] for line in p.stdout.splitlines())
        arr = " ".join("'%s'" % w for w in ("strata",) + words)
        p = subprocess.run(["bash", "-c", script + "\nCOMP_WORDS=(%s); COMP_CWORD=%d; _strata;"
                            " echo ${COMPREPLY[@]}" % (arr, len(words))],
                           capture_output=True, text=True, env=env)
        return p.stdout.split()

    def test_completion_names_and_flags(self):
        """Completion offers each command's own flags, topic and group names from the
        cluster (with the line's --brokers), profile names, and new commands as they come:
        in bash and, with the same rules, in fish (scripts/deps.sh installs it)."""
        self.ok("topic", "create", "compl-a", "compl-b")
        self.ok("topic", "produce", "compl-a", "-q", input="x\n")
        self.ok(*FAST_JOIN, "topic", "consume", "compl-a", "-g", "compl-g", "-n", "1")
        for shell in ("bash", "fish"):
            with self.subTest(shell=shell):
                self.check_completion(shell)
        self.assertEqual(self.complete("completion", "f"), ["fish"])
        self.assertEqual(self.complete("topic", "produce", "x", "-z", "l", shell="fish"), ["lz4"])
        self.assertEqual(self.complete("sec", shell="fish"), ["security"])
        self.assertIn("--num", self.complete("topic", "consume", "x", "--", shell="fish"))
        self.assertIn("--brokers", self.complete("topic", "consume", "x", "--", shell="fish"))
        self.assertEqual(self.complete("--brokers", self.broker.bootstrap, "group", "list",
                                       "compl-", shell="fish"), [])
        # zsh (scripts/deps.sh installs it): the script loads and, the way bashcompinit
        # calls it (sh emulation), offers the candidates (zsh's compadd filters them)
        script = self.ok("completion", "zsh", brokers=False)
        self.assertIn("bashcompinit", script)
        p = subprocess.run(["zsh", "-f", "-c", script + "\nemulate sh -c 'COMP_WORDS=(strata "
                            "topic cr); COMP_CWORD=2; _strata; echo ${COMPREPLY[@]}'"],
                           capture_output=True, text=True, env=dict(os.environ,
                                                                    HOME=self.home.name))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("create", p.stdout.split())
        self.assertIn("describe-storage", p.stdout.split())

    def check_completion(self, shell):
        def complete(*words, home=None):
            return self.complete(*words, home=home, shell=shell)
        b = ["--brokers", self.broker.bootstrap]
        self.assertEqual(complete(*b, "topic", "describe", "compl-"),
                         ["compl-a", "compl-b"])
        self.assertEqual(complete(*b, "topic", "consume", "compl-a", "-g", "x", "compl-"),
                         ["compl-a", "compl-b"])
        self.assertEqual(complete(*b, "group", "describe", "compl-"), ["compl-g"])
        self.assertEqual(complete("topic", "create", "--if"), ["--if-not-exists"])
        self.assertEqual(complete("topic", "produce", "x", "--tomb"), ["--tombstone"])
        self.assertIn("describe-storage", complete("topic", "desc"))
        self.assertEqual(complete("prof"), ["profile"])
        self.assertEqual(complete("cluster", "config", "se"), ["set"])
        self.assertEqual(complete("security", "acl", "cr"), ["create"])
        self.assertEqual(complete("--format", "js"), ["json"])
        self.assertEqual(complete("completion", "z"), ["zsh"])
        with tempfile.TemporaryDirectory(prefix="strata-cli-compl-") as home:
            self.ok("profile", "create", "compl-p1", env={"HOME": home})
            self.assertEqual(complete("profile", "use", "compl", home=home), ["compl-p1"])
            self.assertEqual(complete("--profile", "c", home=home), ["compl-p1"])

    def test_completion_archive_flags(self):
        out = self.ok("completion", "bash", brokers=False)
        p = subprocess.run(["bash", "-c", out + "\nCOMP_WORDS=(strata archive cat --f); "
                            "COMP_CWORD=3; _strata; echo ${COMPREPLY[@]}"],
                           capture_output=True, text=True)
        self.assertEqual(p.stdout.split(), ["--format", "--from"])
        p = subprocess.run(["bash", "-c", out + "\nCOMP_WORDS=(strata archive ve); "
                            "COMP_CWORD=2; _strata; echo ${COMPREPLY[@]}"],
                           capture_output=True, text=True)
        self.assertEqual(p.stdout.strip(), "verify")

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
        self.fails(2, "unknown flag '--bogus'", "topic", "list", "--bogus")
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

    def test_unreachable_broker_fails_fast(self):
        """A refused connection or an unknown host is reported at once with its cause, not
        after --timeout (10 minutes here: a wait would hit the 60 s subprocess bound)."""
        dead = dead_addr()
        for brokers, cause in ((dead, "Connection refused"),
                               ("%s,%s" % (dead, dead_addr()), "Connection refused"),
                               ("no-such-host.invalid:9092", "Failed to resolve")):
            for args in (["topic", "list"], ["topic", "delete", "x"], ["group", "list"],
                         ["topic", "consume", "x"], ["cluster", "config", "list"]):
                rc, out, err = self.run_cli("--brokers", brokers, "--timeout", "10m", *args,
                                            brokers=False, timeout=60)
                self.assertEqual(rc, 1, (args, out, err))
                self.assertIn("cannot reach the cluster at %s: " % brokers, err)
                self.assertIn(cause, err)
            rc, out, err = self.run_cli("--brokers", brokers, "--timeout", "10m", "topic",
                                        "produce", "x", input="a\n", brokers=False, timeout=60)
            self.assertEqual(rc, 1)
            self.assertIn(cause, err)

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

    # ---- issue 21: one grammar for flags ----

    def test_format_flag_one_meaning(self):
        """-f/--format: text and json choose the output everywhere; anything else is the
        record format of produce, consume and archive cat (it used to collide with the
        global --format text|json)."""
        self.ok("topic", "create", "fmt21")
        self.ok("topic", "produce", "fmt21", "-k", "k1", "-q", input="v1\nv2\n")
        out = self.ok("topic", "consume", "fmt21", "-o", "start:end", "--format", "%k=%v\\n")
        self.assertEqual(out, "k1=v1\nk1=v2\n")
        out = self.ok("topic", "consume", "fmt21", "-o", "start:end", "--format=%v\\n")
        self.assertEqual(out, "v1\nv2\n")
        recs = self.jsonl(self.ok("topic", "consume", "fmt21", "-o", "start:end", "-f", "json"))
        self.assertEqual([r["value"] for r in recs], ["v1", "v2"])
        for where in (["topic", "consume", "fmt21", "-o", "start:end", "--format", "text"],
                      ["--format", "text", "topic", "consume", "fmt21", "-o", "start:end"],
                      ["topic", "consume", "fmt21", "-o", "start:end", "-f", "text"]):
            self.assertEqual(self.ok(*where), "v1\nv2\n", where)
        r = self.jsonl(self.ok("topic", "produce", "fmt21", "-f", "json", input="v3\n"))
        self.assertEqual(r[0]["offset"], 2)
        r = self.jsonl(self.ok("topic", "produce", "fmt21", "-f", "%k %v\\n", "--format",
                               "json", input="k4 v4\n"))
        self.assertEqual(r[0]["offset"], 3)
        self.fails(2, "use text, json or a record format", "topic", "consume", "fmt21",
                   "-f", "plain")
        self.fails(2, "give one -f/--format", "topic", "consume", "fmt21", "-f", "%v",
                   "-f", "json")
        self.fails(2, "bad --format 'xml'", "topic", "list", "--format", "xml")
        self.fails(2, "bad --format '%v'", "group", "list", "--format", "%v")

    def test_unknown_flags_are_usage_errors(self):
        """Every command rejects an unknown flag with exit 2 before doing anything (a
        flag used to be taken as a group or topic name)."""
        for args in (["group", "describe", "billing", "--lag"], ["group", "delete", "--bogus"],
                     ["group", "list", "--bogus"], ["storage", "status", "--bogus"],
                     ["storage", "recover", "--bogus"], ["topic", "delete", "x", "--bogus"],
                     ["cluster", "info", "--bogus"], ["cluster", "health", "--bogus"],
                     ["cluster", "status", "--bogus"], ["security", "user", "list", "--bogus"],
                     ["version", "--bogus"], ["completion", "--bogus"],
                     ["topic", "describe", "x", "--bogus"], ["bench", "produce", "--bogus"]):
            err = self.fails(2, "unknown flag '--bogus'" if args[-1] == "--bogus" else
                             "unknown flag '--lag'", *args, brokers=False,
                             env={"STRATA_BROKERS": dead_addr()})
            self.assertIn("'strata %s'" % " ".join(a for a in args if not a.startswith("-")
                                                   and a not in ("billing", "x")), err)
        self.fails(2, "flag -n of 'strata topic consume' needs a value", "topic", "consume",
                   "x", "-n")
        self.fails(2, "takes no value", "topic", "list", "--internal=yes")
        self.fails(2, "after --", "cluster", "config", "set", "log.retention.ms", "-1")

    def test_profile_typo_is_reported(self):
        """An unknown key in ~/.config/strata/strata.yaml is reported, not ignored."""
        with tempfile.TemporaryDirectory(prefix="strata-cli-prof-") as home:
            os.makedirs(os.path.join(home, ".config", "strata"))
            with open(os.path.join(home, ".config", "strata", "strata.yaml"), "w") as f:
                f.write("brokerz: %s\ntls:\n  caa: x.pem\n" % self.broker.bootstrap)
            rc, out, err = self.run_cli("version", env={"HOME": home})
            self.assertEqual(rc, 0, err)
            self.assertIn("strata.yaml:1: unknown key 'brokerz' ignored", err)
            self.assertIn("strata.yaml:3: unknown key 'tls.caa' ignored", err)
        with open(os.path.join(os.path.dirname(__file__), "..", "..", ".gitignore")) as f:
            self.assertIn("/strata-data/", f.read().split())  # strata start's data

    def test_profiles(self):
        """strata profile create|use|list|show|delete, --profile and $STRATA_PROFILE."""
        with tempfile.TemporaryDirectory(prefix="strata-cli-profiles-") as home:
            env = {"HOME": home}
            dead = dead_addr()
            self.ok("profile", "create", "sec", "--user", "u1", "--password", "pw1",
                    "--sasl-mechanism", "PLAIN", env=env)
            self.ok("profile", "create", "good", env=env)
            self.ok("--brokers", dead, "profile", "create", "bad", brokers=False, env=env)
            rc, out, err = self.run_cli("profile", "create", "bad", env=env)
            self.assertEqual(rc, 1)
            self.assertIn("--force", err)
            path = os.path.join(home, ".config", "strata", "profiles", "good.yaml")
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
            lst = self.json("profile", "list", brokers=False, env=env)
            self.assertEqual([(p["name"], p["current"], p["brokers"]) for p in lst],
                             [("bad", True, dead), ("good", False, self.broker.bootstrap),
                              ("sec", False, self.broker.bootstrap)])
            # current: bad -> unreachable; --profile / $STRATA_PROFILE pick another
            self.fails(1, "cannot reach the cluster at " + dead, "topic", "list",
                       brokers=False, env=env)
            self.ok("--brokers", self.broker.bootstrap, "profile", "create", "good2",
                    brokers=False, env=env)  # not sec's SASL settings: no profile is read
            self.ok("profile", "use", "bad", brokers=False, env=env)
            show = self.json("profile", "show", "sec", brokers=False, env=env)
            self.assertEqual((show["brokers"], show["user"], show["password"]),
                             (self.broker.bootstrap, "u1", "(set)"))
            self.fails(2, "unknown profile 'nope'", "--profile", "nope", "topic", "list",
                       brokers=False, env=env)
            self.fails(2, "unknown profile 'nope'", "topic", "list", brokers=False,
                       env=dict(env, STRATA_PROFILE="nope"))
            self.ok("profile", "delete", "good", brokers=False, env=env)
            self.ok("profile", "use", "good2", brokers=False, env=env)
            self.ok("topic", "list", brokers=False, env=env)  # good2's brokers
            self.ok("profile", "delete", "good2", brokers=False, env=env)
            rc, out, err = self.run_cli("version", brokers=False, env=env)
            self.assertEqual(rc, 0)
            self.fails(1, "unknown profile 'good'", "profile", "use", "good", brokers=False,
                       env=env)
            self.fails(2, "bad profile name", "profile", "create", "../x", env=env)

    def test_json_errors(self):
        """With --format json an error is one JSON object on stderr."""
        rc, out, err = self.run_cli("topic", "describe", "no-such-21", "--format", "json")
        self.assertEqual((rc, out), (1, ""))
        e = json.loads(err)
        self.assertEqual(e["exit_code"], 1)
        self.assertIn("no-such-21", e["error"])
        rc, out, err = self.run_cli("--format", "json", "topic", "create")
        self.assertEqual(json.loads(err)["exit_code"], 2)

    def test_group_consume_says_joining_on_a_terminal(self):
        """On a terminal, a group consume says it is joining (the first join may wait
        group.initial.rebalance.delay.ms); in a pipe it stays quiet."""
        self.ok("topic", "create", "join21")
        self.ok("topic", "produce", "join21", "-q", input="a\n")
        rc, out, said = self.run_on_pty(*FAST_JOIN, "topic", "consume", "join21", "-g",
                                        "g-join21", "-n", "1", "-f", "%v\\n")
        self.assertEqual((rc, out), (0, "a\n"))
        self.assertIn(b"joining group 'g-join21'", said)
        rc, out, err = self.run_cli(*FAST_JOIN, "topic", "consume", "join21", "-g", "g-join21b",
                                    "-n", "1", "-f", "%v\\n")
        self.assertEqual((rc, out, err), (0, "a\n", ""))

    def test_main_help_names_real_commands(self):
        """Every command and topic verb the top-level help names exists (it promised
        'alter topics' while there is only alter-config)."""
        out = self.ok("--help", brokers=False)
        cmds = re.findall(r"^  ([a-z]+) {2,}", out.split("Global flags")[0], re.M)
        self.assertIn("topic", cmds)
        for c in cmds:
            self.ok(c, "--help", brokers=False)
        block = out.split("  topic ")[1].split("\n  group")[0]
        verbs = re.findall(r"[a-z][a-z-]+", block.split(";")[0])
        self.assertIn("alter-config", verbs)
        for v in verbs:
            if v != "topics":
                self.ok("topic", v, "--help", brokers=False)

    def test_cluster_config_source_read_only_live_values(self):
        """cluster config get: read_only is false for the keys 'set' changes, the source of
        a value set through the admin API is dynamic, and a live log level shows."""
        adm = ["--admin-url", "http://127.0.0.1:%d" % self.broker.admin_port]
        g = self.json(*adm, "cluster", "config", "get", "log.retention.ms")
        self.assertEqual((g["read_only"], g["source"]), (False, "default"))
        self.assertTrue(self.json("cluster", "config", "get", "log.dir")["read_only"])
        self.ok(*adm, "cluster", "config", "set", "log.retention.ms", "86400001")
        try:
            g = self.json(*adm, "cluster", "config", "get", "log.retention.ms")
            self.assertEqual((g["value"], g["source"]), ("86400001", "dynamic-default-broker"))
        finally:
            self.ok(*adm, "cluster", "config", "delete", "log.retention.ms")
        g = self.json(*adm, "cluster", "config", "get", "log.retention.ms")
        self.assertEqual((g["value"], g["source"]), ("604800000", "default"))
        self.ok(*adm, "cluster", "config", "set", "strata.log.level", "warn")
        try:
            g = self.json(*adm, "cluster", "config", "get", "strata.log.level")
            self.assertEqual((g["value"], g["source"]), ("warn", "dynamic-default-broker"))
        finally:
            self.ok(*adm, "cluster", "config", "delete", "strata.log.level")
        self.assertNotEqual(self.ok("cluster", "config", "get", "strata.log.level"), "warn\n")

    def run_on_pty(self, *args):
        """Run strata with stderr on a terminal. @return (rc, stdout, stderr bytes)."""
        master, slave = pty.openpty()
        try:
            p = subprocess.run([STRATA, "--brokers", self.broker.bootstrap, *args],
                               stdout=subprocess.PIPE, stderr=slave, text=True, timeout=120)
            os.close(slave)
            slave = -1
            said = b""
            while select.select([master], [], [], 0)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                said += chunk
        finally:
            if slave >= 0:
                os.close(slave)
            os.close(master)
        return p.returncode, p.stdout, said

    def test_bench_produce_count_and_progress(self):
        """bench produce -n N sends exactly N records; progress shows on a terminal only."""
        r = self.json("bench", "produce", "-t", "bench-n21", "-n", "37", "-s", "10")
        self.assertEqual((r["records"], r["failed"]), (37, 0))
        out = self.ok("topic", "consume", "bench-n21", "-o", "start:end", "-f", "%o\\n")
        self.assertEqual(len(out.split()), 37)
        rc, out, said = self.run_on_pty("bench", "produce", "-t", "bench-n21", "-n", "5")
        self.assertEqual(rc, 0, said)
        self.assertIn(b"strata: produced ", said)
        self.assertIn("delivered=5 ", out)
        rc, out, said = self.run_on_pty("bench", "consume", "-t", "bench-n21")
        self.assertEqual(rc, 0, said)
        self.assertIn(b"strata: consumed ", said)
        rc, out, err = self.run_cli("bench", "produce", "-t", "bench-n21", "-n", "5")
        self.assertEqual((rc, err), (0, ""))

    def test_cluster_partitions_and_metadata(self):
        self.ok("topic", "create", "cp21-a", "-p", "3")
        self.ok("topic", "create", "cp21-b")
        r = self.json("cluster", "partitions", "-r", "cp21-.*")
        self.assertEqual([(p["topic"], p["partition"]) for p in r],
                         [("cp21-a", 0), ("cp21-a", 1), ("cp21-a", 2), ("cp21-b", 0)])
        self.assertTrue(all(p["leader"] == 0 and p["replicas"] == [0] and p["in_sync"] == [0]
                            for p in r), r)
        out = self.ok("cluster", "partitions", "cp21-b")
        self.assertEqual(out.split("\n")[1].split(), ["cp21-b", "0", "0", "0", "0"])
        self.fails(1, "unknown topic 'cp21-x'", "cluster", "partitions", "cp21-x")
        self.assertEqual(self.json("cluster", "metadata")["controller_id"],
                         self.json("cluster", "info")["controller_id"])

    def test_cluster_config_export_import_edit(self):
        """export writes the settable configs, import applies the changed ones and returns
        dropped dynamic keys to their defaults, edit runs $EDITOR between the two."""
        adm = ["--admin-url", "http://127.0.0.1:%d" % self.broker.admin_port]
        with tempfile.TemporaryDirectory(prefix="strata-cli-cfg-") as d:
            f = os.path.join(d, "c.yaml")
            self.ok(*adm, "cluster", "config", "export", "--file", f)
            text = open(f).read()
            self.assertIn("log.retention.ms: 604800000\n", text)
            self.assertNotIn("log.dir:", text)  # read-only: not exported
            with open(f, "w") as out:
                out.write(text.replace("log.retention.ms: 604800000",
                                       "log.retention.ms: 7200000"))
            out = self.ok(*adm, "cluster", "config", "import", "--file", f)
            self.assertEqual(out, "Set log.retention.ms=7200000: in effect now\n")
            self.assertEqual(self.ok("cluster", "config", "get", "log.retention.ms"),
                             "7200000\n")
            self.assertEqual(self.ok(*adm, "cluster", "config", "import", "--file", f),
                             "No changes\n")
            # edit: the editor drops the line: back to the default
            ed = os.path.join(d, "ed.sh")
            with open(ed, "w") as out:
                out.write("#!/bin/sh\nsed -i '/^log.retention.ms:/d' \"$1\"\n")
            os.chmod(ed, 0o755)
            out = self.ok(*adm, "cluster", "config", "edit", env={"EDITOR": ed})
            self.assertIn("Removed log.retention.ms", out)
            self.assertEqual(self.ok("cluster", "config", "get", "log.retention.ms"),
                             "604800000\n")
            with open(f, "w") as out:
                out.write("log.dir: /x\n")
            self.fails(2, "log.dir cannot be set", *adm, "cluster", "config", "import",
                       "--file", f)
            with open(f, "w") as out:
                out.write("no.such.key: 1\n")
            self.fails(2, "unknown broker config 'no.such.key'", *adm, "cluster", "config",
                       "import", "--file", f)
            self.fails(2, "import needs --file", "cluster", "config", "import")

    def test_consume_past_the_end_says_so(self):
        """An exact offset past the end (or before the start) is reported on stderr and
        reading starts at the end: consume used to wait there without a word."""
        self.ok("topic", "create", "past21")
        self.ok("topic", "produce", "past21", "-q", input="a\nb\n")
        rc, out, err = self.run_cli("topic", "consume", "past21", "-o", "100:end")
        self.assertEqual((rc, out), (0, ""), err)
        self.assertIn("offset 100 is past the end of past21/0 (next offset 2)", err)
        self.ok("topic", "trim-prefix", "past21", "-o", "1")
        rc, out, err = self.run_cli("topic", "consume", "past21", "-o", "0:end", "-f", "%v\\n")
        self.assertEqual((rc, out), (0, "b\n"), err)
        self.assertIn("offset 0 is before the start of past21/0 (first offset 1)", err)
        # without :end it says so at once, then waits at the end for new records
        cons = subprocess.Popen([STRATA, "--brokers", self.broker.bootstrap, "topic", "consume",
                                 "past21", "-o", "100", "-n", "1", "-f", "%v\\n"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            ready, _, _ = select.select([cons.stderr], [], [], 60)
            self.assertTrue(ready, "consume said nothing about the offset past the end")
            self.assertIn("past the end", cons.stderr.readline())
            deadline = time.monotonic() + 60
            while cons.poll() is None and time.monotonic() < deadline:
                self.ok("topic", "produce", "past21", "-q", input="c\n")
                time.sleep(0.5)
            out, _ = cons.communicate(timeout=30)
            self.assertEqual((cons.returncode, out), (0, "c\n"))
        finally:
            if cons.poll() is None:
                cons.kill()
                cons.communicate()

    # ---- rpk parity ----

    def test_topic_regex_several_names_if_not_exists(self):
        self.ok("topic", "create", "rx-ord-1", "rx-ord-2", "rx-pay")
        names = [t["name"] for t in self.json("topic", "list", "rx-ord.*")]
        self.assertEqual(names, ["rx-ord-1", "rx-ord-2"])
        names = [t["name"] for t in self.json("topic", "list", "-r", "rx-o.*-2", "rx-pay")]
        self.assertEqual(names, ["rx-ord-2", "rx-pay"])
        self.assertEqual(self.json("topic", "list", "rx-nomatch.*"), [])
        self.fails(2, "bad regular expression", "topic", "list", "rx-(")
        d = self.json("topic", "describe", "rx-ord-1", "rx-pay", "-s")
        self.assertEqual([t["name"] for t in d], ["rx-ord-1", "rx-pay"])
        d = self.json("topic", "describe", "-r", "rx-ord.*", "-s")
        self.assertEqual([t["name"] for t in d], ["rx-ord-1", "rx-ord-2"])
        self.assertEqual(self.json("topic", "describe", "rx-pay", "-s")["name"], "rx-pay")
        out = self.ok("topic", "describe", "rx-ord-1", "rx-ord-2", "-s")
        self.assertEqual(out.count("SUMMARY"), 2)
        self.fails(1, "unknown topic 'rx-none'", "topic", "describe", "rx-pay", "rx-none")
        self.fails(1, "no topic matches", "topic", "describe", "-r", "rx-none.*")
        # --if-not-exists: an existing topic is fine, a new one is created
        rc, out, err = self.run_cli("topic", "create", "rx-pay")
        self.assertEqual(rc, 1)
        self.assertIn("already exists", out)
        r = self.json("topic", "create", "rx-pay", "rx-new", "--if-not-exists")
        self.assertEqual(r, [{"topic": "rx-pay", "error": None}, {"topic": "rx-new",
                                                                  "error": None}])
        # delete by regex: only the matches
        r = self.json("topic", "delete", "-r", "rx-ord-.*")
        self.assertEqual(sorted(x["topic"] for x in r), ["rx-ord-1", "rx-ord-2"])
        names = [t["name"] for t in self.json("topic", "list", "rx-.*")]
        self.assertEqual(names, ["rx-new", "rx-pay"])
        self.fails(1, "no topic matches", "topic", "delete", "-r", "rx-ord-.*")

    def test_produce_tombstones(self):
        """-Z: an empty value is produced as null; without it, as an empty string."""
        self.ok("topic", "create", "tomb21")
        self.ok("topic", "produce", "tomb21", "-q", "-Z", "-f", "%k %v\\n",
                input="k1 v1\nk1 \n")
        self.ok("topic", "produce", "tomb21", "-q", "-f", "%k %v\\n", input="k2 \n")
        recs = self.jsonl(self.ok("topic", "consume", "tomb21", "-o", "start:end"))
        self.assertEqual([(r["key"], r["value"]) for r in recs],
                         [("k1", "v1"), ("k1", None), ("k2", "")])

    def test_consume_transactions_to_end_and_isolation(self):
        """-o start:end ends on a topic whose last offsets are transaction markers or
        aborted records (it used to wait forever); --read-uncommitted shows aborted ones."""
        from confluent_kafka import Producer
        self.ok("topic", "create", "txc21")
        p = Producer({"bootstrap.servers": self.broker.bootstrap,
                      "transactional.id": "txc21-%d" % os.getpid()})
        p.init_transactions(30)
        p.begin_transaction()
        p.produce("txc21", b"committed", partition=0)
        p.commit_transaction(30)
        p.begin_transaction()
        p.produce("txc21", b"aborted", partition=0)
        p.flush(30)
        p.abort_transaction(30)
        f = ["-o", "start:end", "-f", "%o %v\\n"]
        self.assertEqual(self.ok("topic", "consume", "txc21", *f), "0 committed\n")
        self.assertEqual(self.ok("topic", "consume", "txc21", "--read-committed", *f),
                         "0 committed\n")
        self.assertEqual(self.ok("topic", "consume", "txc21", "--read-uncommitted", *f),
                         "0 committed\n2 aborted\n")

    def test_consume_encodings_and_meta_only(self):
        self.ok("topic", "create", "enc21")
        self.ok("topic", "produce", "enc21", "-q", "-k", "k\xff", "-H", "h=1",
                input="hello\n")
        out = self.ok("topic", "consume", "enc21", "-o", "start:end", "-f",
                      "%k{hex} %v{base64} %v{hex} %v{text}\\n")
        self.assertEqual(out, "6bc3bf aGVsbG8= 68656c6c6f hello\n")
        m = self.jsonl(self.ok("topic", "consume", "enc21", "-o", "start:end", "--meta-only"))
        self.assertEqual(m, [{"topic": "enc21", "partition": 0, "offset": 0,
                              "timestamp": m[0]["timestamp"], "key_size": 3, "value_size": 5,
                              "headers": 1}])
        self.fails(2, "bad format encoding", "topic", "consume", "enc21", "-f", "%v{rot13}")
        self.fails(2, "apply to consume output", "topic", "produce", "enc21", "-f",
                   "%v{hex}\\n")
        self.fails(2, "--meta-only prints JSON", "topic", "consume", "enc21", "--meta-only",
                   "-f", "%v")

    def test_format_timestamps_and_header_count(self):
        """rpk's %d{unix_*}, %d{strftime[...]} and %d{go[...]} timestamp modifiers and %H
        header count."""
        self.ok("topic", "create", "ts21")
        self.ok("topic", "produce", "ts21", "-q", "-f", "%t %v\\n", "-H", "a=1", "-H", "b=2",
                input="%d one\n" % (T0 + 1234))
        out = self.ok("topic", "consume", "ts21", "-o", "start:end", "-f",
                      "%d %T %d{unix_sec} %d{unix_milli} %d{unix_micro} %d{unix_nano} "
                      "%d{strftime[%FT%T}Z]} %H %v\\n")
        self.assertEqual(out, "1700000001234 1700000001234 1700000001 1700000001234 "
                              "1700000001234000 1700000001234000000 2023-11-14T22:13:21}Z 2 one\n")
        self.assertEqual(self.ok("topic", "consume", "ts21", "-o", "start:end", "-f",
                                 "%T{strftime[%Y]}%%%H\\n"), "2023%2\n")
        go = self.ok("topic", "consume", "ts21", "-o", "start:end", "-f",
                     "%d{go[2006-01-02T15:04:05.000Z07:00 Mon January _2 3PM 06 .999 .99 "
                     ",000000 002 -07:00 MST 1/2 4:5]}\\n")
        self.assertEqual(go, "2023-11-14T22:13:21.234Z Tue November 14 10PM 23 .234 .23 "
                             ",234000 318 +00:00 UTC 11/14 13:21\n")
        self.fails(2, "bad timestamp format", "topic", "consume", "ts21", "-f", "%d{rfc3339}")
        self.fails(2, "bad timestamp format", "topic", "consume", "ts21", "-f", "%d{go[]}")
        self.fails(2, "bad timestamp format", "topic", "consume", "ts21", "-f", "%d{strftime[]}")
        self.fails(2, "bad format field '%H'", "topic", "produce", "ts21", "-f", "%H %v\\n")

    def test_offset_grammar(self):
        """-o: START:STOP with an offset or a time as STOP (exclusive), START:, :STOP, @:T."""
        self.ok("topic", "create", "og21")
        self.ok("topic", "produce", "og21", "-q", "-f", "%t %v\\n",
                input="".join("%d v%d\n" % (T0 + i * 1000, i) for i in range(10)))
        f = ["-f", "%v\\n"]
        c = lambda spec: self.ok("topic", "consume", "og21", "-o", spec, *f).split()  # noqa
        self.assertEqual(c("3:6"), ["v3", "v4", "v5"])
        self.assertEqual(c(":2"), ["v0", "v1"])
        self.assertEqual(c("+8:end"), ["v8", "v9"])
        self.assertEqual(c("-2:end"), ["v8", "v9"])
        self.assertEqual(c("7:@%d" % (T0 + 9000)), ["v7", "v8"])
        self.assertEqual(c("@%d:%d" % (T0 + 2000, T0 + 4000)), ["v2", "v3"])
        self.assertEqual(c("@:%d" % (T0 + 1000)), ["v0"])
        self.assertEqual(c("@%d:end" % (T0 + 8500)), ["v9"])
        self.assertEqual(c("5:5"), [])
        self.assertEqual(self.ok("topic", "consume", "og21", "-o", "8:", "-n", "2", *f).split(),
                         ["v8", "v9"])
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((T0 + 6000) / 1000))
        self.assertEqual(c("@%s:end" % iso), ["v6", "v7", "v8", "v9"])
        self.assertEqual(c("@:%s" % iso), ["v0", "v1", "v2", "v3", "v4", "v5"])
        self.fails(2, "bad --offset", "topic", "consume", "og21", "-o", "3:x")
        self.fails(2, "bad --offset", "topic", "consume", "og21", "-o", "@x:y")

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
        self.assertEqual(d["total_lag"], total_lag)  # rpk's columns (issue 21)
        self.assertTrue(d["partitions"])  # one or both partitions have a commit
        self.assertEqual({p["log_start_offset"] for p in d["partitions"]}, {0})
        out = self.ok("group", "describe", "cli-g")
        for col in ("TOTAL-LAG    %d" % total_lag, "LOG-START-OFFSET", "CLIENT-ID", "HOST"):
            self.assertIn(col, out)
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
        # a missing group is an error, not a Dead group with exit 0
        self.fails(1, "unknown group 'cli-g'", "group", "describe", "cli-g")
        rc, out, err = self.run_cli("group", "describe", "never-g2", "--format", "json")
        self.assertEqual((rc, json.loads(out)), (1, []))
        self.assertIn("unknown group 'never-g2'", json.loads(err)["error"])
        self.fails(1, "no committed offsets", "group", "seek", "never-g", "--to", "start")

    def test_group_seek_to_group_and_file(self):
        self.ok("topic", "create", "gs21", "-p", "2")
        self.ok("topic", "produce", "gs21", "-p", "0", "-q", input="a\nb\nc\n")
        self.ok("topic", "produce", "gs21", "-p", "1", "-q", input="d\n")
        with tempfile.TemporaryDirectory(prefix="strata-cli-seek-") as d:
            f = os.path.join(d, "offs.txt")
            with open(f, "w") as out:
                out.write("# topic partition offset\ngs21 0 2\n\ngs21 1 1\n")
            r = self.json("group", "seek", "gs21-a", "--to-file", f)
            self.assertEqual(r, [{"group": "gs21-a", "error": None}])
            offs = lambda g: {p["partition"]: p["current_offset"]  # noqa: E731
                              for p in self.json("group", "describe", g)[0]["partitions"]}
            self.assertEqual(offs("gs21-a"), {0: 2, 1: 1})
            self.ok("group", "seek", "gs21-b", "--to-group", "gs21-a", "--topics", "gs21")
            self.assertEqual(offs("gs21-b"), {0: 2, 1: 1})
            with open(f, "w") as out:
                out.write("gs21 5 0\n")
            self.fails(1, "unknown partition gs21/5", "group", "seek", "gs21-c", "--to-file", f)
            with open(f, "w") as out:
                out.write("gs21 zero 0\n")
            self.fails(2, "expected TOPIC PARTITION OFFSET", "group", "seek", "gs21-c",
                       "--to-file", f)
        self.fails(1, "no committed offsets to copy", "group", "seek", "gs21-c", "--to-group",
                   "gs21-none")
        self.fails(2, "one of --to, --to-group, --to-file", "group", "seek", "gs21-c", "--to",
                   "start", "--to-group", "gs21-a")

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
            self.assertTrue(all(p["host"] for p in d["partitions"]), d)
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
        # topic describe-storage: rpk's per-topic tiered view (issue 21)
        d = self.json(*a, "topic", "describe-storage", "stor")
        self.assertEqual([p["end_offset"] for p in d["partitions"]], [0, 2])
        out = self.ok(*a, "topic", "describe-storage", "stor")
        self.assertIn("SUMMARY", out)
        row = [ln.split() for ln in out.split("\nOFFSETS\n")[1].splitlines() if ln.strip()]
        self.assertEqual(row[0][:5], ["PARTITION", "LOG-START-OFFSET", "LOCAL-START-OFFSET",
                                      "UPLOADED-OFFSET", "END-OFFSET"])
        self.assertEqual([r[0] for r in row[1:]], ["0", "1"])
        self.assertEqual(row[2][4], "2")
        self.fails(1, "unknown topic 'nope-2'", *a, "topic", "describe-storage", "nope-2")
        self.fails(2, "exactly one TOPIC", *a, "topic", "describe-storage")
        out = self.ok(*a, "storage", "recover")
        self.assertIn("Recovery started from file://", out)  # says from where, and what next
        self.assertIn("strata storage status", out)
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

    # ---- bench (the benchmarks' load driver; no timing asserts) ----

    def test_bench(self):
        for c in ([], ["produce"], ["consume"], ["fetch"], ["metadata"], ["loopback"], ["mock"]):
            out = self.ok("bench", *c, "--help", brokers=False)
            self.assertIn("Usage: strata bench", out, c)
            self.assertIn("Examples", out, c)
        self.fails(2, "--acks", "bench", "produce", "--acks", "2", brokers=False)
        p = self.json("bench", "produce", "-t", "benchcli", "-p", "3", "-d", "1s", "--rate", "500",
                      "-s", "100")
        self.assertEqual((p["mode"], p["partitions"], p["failed"]), ("produce", 3, 0))
        self.assertGreater(p["records"], 0)
        self.assertLessEqual(p["p50_ms"], p["p99_ms"])
        c = self.json("bench", "consume", "-t", "benchcli")
        self.assertEqual((c["records"], c["bytes"], c["complete"]), (p["records"], p["records"] * 100,
                                                                     True))
        m = self.json("bench", "metadata", "-n", "3")
        self.assertEqual(m["requests"], 3)
        self.assertGreaterEqual(m["partitions"], 3)
        self.fails(1, "no such topic", "bench", "consume", "-t", "benchcli-none")

    def test_bench_mock_cluster(self):
        mock = subprocess.Popen([STRATA, "bench", "mock", "--mock-topic", "m:2", "-d", "60s"],
                                stdout=subprocess.PIPE, text=True)
        try:
            boot = mock.stdout.readline().strip()
            self.assertRegex(boot, r"^127\.0\.0\.1:\d+")
            b = ["--brokers", boot, "--format", "json"]
            r = subprocess.run([STRATA, *b, "bench", "produce", "-t", "m", "-p", "2", "-d", "1s",
                                "--rate", "200"], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertGreater(json.loads(r.stdout)["records"], 0)
            r = subprocess.run([STRATA, *b, "bench", "consume", "-t", "m", "-n", "2"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(json.loads(r.stdout)["complete"])
        finally:
            mock.send_signal(signal.SIGTERM)
            mock.communicate(timeout=30)
        self.assertEqual(mock.returncode, 0)


# ---- strata archive: ls, cat, verify against archives a real stratad wrote ----

ARCH_ARGS = ["-X", "remote.log.storage.system.enable=true", "-X", "log.segment.bytes=16384"]
T0 = 1700000000000  # record timestamps: T0 + partition * 1000000 + i


def arch_records(part, n):
    """(key, value, timestamp, headers) of record i of a partition: every third key is null,
    every fifth record has a header; values are hard to compress so segments fill up."""
    import hashlib
    out = []
    for i in range(n):
        key = None if i % 3 == 0 else b"k%d-%d" % (part, i)
        value = b"v%d-%06d-%s" % (part, i, hashlib.sha256(b"%d/%d" % (part, i)).hexdigest()
                                  .encode())
        hdrs = [("h", b"%d" % i)] if i % 5 == 0 else []
        out.append((key, value, T0 + part * 1000000 + i, hdrs))
    return out


def produce_records(bootstrap, topic, part, recs, codec):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 5,
                  "batch.num.messages": 100, "acks": "all"})
    for k, v, ts, h in recs:
        p.produce(topic, v, key=k, partition=part, timestamp=ts, headers=h or None)
    assert p.flush(60) == 0


def archived_rows(data, topic):
    import sqlite3
    db = sqlite3.connect(os.path.join(data, "remote-index.db"))
    try:
        return db.execute("SELECT partition, base_offset, last_offset, size, object_key "
                          "FROM segments WHERE topic=? ORDER BY partition, base_offset",
                          (topic,)).fetchall()
    finally:
        db.close()


def write_archive(data, topic, counts, codecs, url=None, env=None):
    """Start stratad on data, write counts[p] records to partition p of topic, wait (upper
    bound) until all are uploaded, stop it. @return {partition: records}."""
    from confluent_kafka.admin import AdminClient, NewTopic
    extra = ["-X", "strata.archive.url=" + url] if url else []
    b = Broker(*ARCH_ARGS, *extra, data=data, env=env, smp=1)
    try:
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        a.create_topics([NewTopic(topic, len(counts), 1, config={"segment.ms": "1000"})]
                        )[topic].result(30)
        recs = {}
        for part, n in enumerate(counts):
            recs[part] = arch_records(part, n)
            produce_records(b.bootstrap, topic, part, recs[part], codecs[part])
        deadline = time.monotonic() + 120
        while True:
            rows = archived_rows(data, topic)
            last = {}
            for r in rows:
                last[r[0]] = r[2]
            if all(last.get(p) == n - 1 for p, n in enumerate(counts)):
                break
            if time.monotonic() > deadline:
                raise AssertionError("not uploaded: %s" % rows)
            time.sleep(0.2)
        rc, out = b.stop()
        assert rc == 0, out
    finally:
        if b.proc:
            b.stop()
    return recs


class ArchiveTest(unittest.TestCase):
    """`strata archive` reads what a stopped broker archived: a file:// archive (two
    partitions, zstd and snappy batches) and an S3 bucket."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="strata-cli-arch-")
        cls.home = tempfile.TemporaryDirectory(prefix="strata-cli-home-")
        cls.data = os.path.join(cls.tmp.name, "data")
        cls.arch = os.path.join(cls.data, "archive")
        cls.url = "file://" + cls.arch
        cls.recs = write_archive(cls.data, "arch", [2000, 600], ["zstd", "snappy"])
        cls.rows = archived_rows(cls.data, "arch")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        cls.home.cleanup()

    def cli(self, *args, env=None, cwd="/", archive=True):
        e = dict(os.environ)
        e.pop("STRATA_ARCHIVE_URL", None)
        e["HOME"] = self.home.name
        e["STRATA_ADMIN_URL"] = "http://" + dead_addr()  # no broker's archive by default
        e.update(env or {})
        cmd = [STRATA, "archive", *args] + (["--archive", self.url] if archive is True else [])
        p = subprocess.run(cmd, capture_output=True, text=True, env=e, cwd=cwd, timeout=300)
        return p.returncode, p.stdout, p.stderr

    def ok(self, *args, **kw):
        rc, out, err = self.cli(*args, **kw)
        self.assertEqual(rc, 0, "strata archive %s: %s%s" % (" ".join(args), out, err))
        return out

    def fails(self, rc_expected, needle, *args, **kw):
        rc, out, err = self.cli(*args, **kw)
        self.assertEqual(rc, rc_expected, "strata archive %s: rc %d out %r err %r" %
                         (" ".join(args), rc, out, err))
        self.assertIn("strata: ", err)
        self.assertIn(needle, err)
        return err

    def expect_line(self, part, i):
        k, v, ts, h = self.recs[part][i]
        return "%d|%d|%s|%s|%s" % (i, ts, (k or b"").decode(), v.decode(),
                                   ",".join("%s=%s" % (hk, hv.decode()) for hk, hv in h))

    def expect_json(self, topic, part, i, recs=None):
        k, v, ts, h = (recs or self.recs)[part][i]
        return {"topic": topic, "key": k.decode() if k is not None else None,
                "value": v.decode(), "headers": [{"key": hk, "value": hv.decode()}
                                                 for hk, hv in h],
                "timestamp": ts, "partition": part, "offset": i}

    # ---- ls ----

    def test_ls(self):
        self.assertGreaterEqual(len([r for r in self.rows if r[0] == 0]), 3)
        j = json.loads(self.ok("ls", "--format", "json"))
        self.assertEqual(j["archive"], self.url)
        want = []
        for part, n in ((0, 2000), (1, 600)):
            rows = [r for r in self.rows if r[0] == part]
            want.append({"topic": "arch", "partition": part, "first_offset": 0,
                         "last_offset": n - 1, "first_timestamp": T0 + part * 1000000,
                         "last_timestamp": T0 + part * 1000000 + n - 1,
                         "objects": len(rows), "bytes": sum(r[3] for r in rows)})
        self.assertEqual(j["partitions"], want)
        # The topic manifest the broker keeps in the archive.
        self.assertEqual(j["topics"], [{"topic": "arch", "partitions": 2,
                                        "configs": {"segment.ms": "1000"}}])
        out = self.ok("ls", "arch")
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["TOPIC", "PARTITION", "FIRST-OFFSET", "LAST-OFFSET",
                                            "FIRST-TIMESTAMP", "LAST-TIMESTAMP", "OBJECTS",
                                            "BYTES"])
        self.assertEqual(lines[1].split(), ["arch", "0", "0", "1999", "2023-11-14T22:13:20.000Z",
                                            "2023-11-14T22:13:21.999Z", str(want[0]["objects"]),
                                            str(want[0]["bytes"])])
        self.assertEqual(lines[3:], ["", "TOPIC" + " " * 26 + "PARTITIONS CONFIGS",
                                     "arch" + " " * 27 + "2          segment.ms=1000"])
        self.fails(1, "unknown topic 'nope'", "ls", "nope")

    def test_default_archive_says_which(self):
        """Without --archive, stderr says which archive is read; with both ./strata-data
        and ./data it names the other one too (issue 21 item 4)."""
        rc, out, err = self.cli("ls", archive=False, cwd=self.tmp.name)
        self.assertEqual(rc, 0, err)
        self.assertIn("reading the archive file://./data/archive", err)
        with tempfile.TemporaryDirectory(prefix="strata-cli-both-") as d:
            os.makedirs(os.path.join(d, "strata-data", "archive"))
            os.symlink(self.data, os.path.join(d, "data"))
            rc, out, err = self.cli("ls", archive=False, cwd=d)
            self.assertEqual(rc, 0, err)
            self.assertIn("reading the archive file://./strata-data/archive; ./data/archive "
                          "exists too", err)

    def test_running_broker_archive_recovery_log_storage_status(self):
        """A broker restarted on an archived data directory: its log does not claim an
        empty recovery, storage status has a real per-topic column, and `archive ls`
        without --archive reads that broker's archive (admin API) and says so."""
        with tempfile.TemporaryDirectory(prefix="strata-cli-rerun-") as d:
            data = os.path.join(d, "data")
            shutil.copytree(self.data, data)
            os.remove(os.path.join(data, ".lock"))
            b = Broker(*ARCH_ARGS, data=data, smp=1)
            try:
                b.wait_for("recovery from the archive", seen=True)
                log = "".join(b.lines)
                self.assertIn("recovery from the archive not needed", log)
                self.assertNotIn("objects=0", log)
                admin = "http://127.0.0.1:%d" % b.admin_port
                p = subprocess.run([STRATA, "--admin-url", admin, "storage", "status"],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(p.returncode, 0, p.stderr)
                rows = [line.split() for line in p.stdout.splitlines()]
                hdr = next(r for r in rows if r and r[0] == "TOPIC")
                row = next(r for r in rows if r and r[0] == "arch")
                self.assertNotEqual(row[hdr.index("UNARCHIVED-OFFSETS")], "-", p.stdout)
                rc, out, err = self.cli("ls", "--format", "json", archive=False, cwd=d,
                                        env={"STRATA_ADMIN_URL": admin})
                self.assertEqual(rc, 0, err)
                self.assertEqual(json.loads(out)["archive"], "file://%s/archive" % data)
                self.assertIn("of the broker at " + admin, err)
            finally:
                b.stop()
                b.close()

    def test_default_archive_env_and_profile(self):
        # No --archive: ./data/archive (stratad's default for log.dir ./data) from the cwd.
        j = json.loads(self.ok("ls", "--format", "json", archive=False, cwd=self.tmp.name))
        self.assertEqual(j["archive"], "file://./data/archive")
        self.assertEqual(len(j["partitions"]), 2)
        self.fails(1, "no archive found", "ls", archive=False, cwd=self.home.name)
        j = json.loads(self.ok("ls", "--format", "json", archive=False,
                               env={"STRATA_ARCHIVE_URL": self.url}))
        self.assertEqual(j["archive"], self.url)
        prof = os.path.join(self.home.name, ".config", "strata")
        os.makedirs(prof, exist_ok=True)
        with open(os.path.join(prof, "strata.yaml"), "w") as f:
            f.write("archive_url: %s\n" % self.url)
        try:
            j = json.loads(self.ok("ls", "--format", "json", archive=False))
            self.assertEqual(j["archive"], self.url)
        finally:
            os.unlink(os.path.join(prof, "strata.yaml"))

    # ---- cat ----

    def test_cat_offsets_and_formats(self):
        out = self.ok("cat", "arch", "0", "--from", "10", "-n", "3", "-f", "%o|%T|%k|%v|%h\\n")
        self.assertEqual(out.splitlines(), [self.expect_line(0, i) for i in (10, 11, 12)])
        # rpk's header count and timestamp modifiers, as in consume
        out = self.ok("cat", "arch", "0", "--from", "10", "-n", "1", "-f",
                      "%H %d{unix_sec} %d{go[2006-01-02T15:04:05.000Z07:00]}\\n")
        ts, h = self.recs[0][10][2], self.recs[0][10][3]
        self.assertEqual(out, "%d %d %s.%03dZ\n" % (
            len(h), ts // 1000, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts // 1000)),
            ts % 1000))
        # Every record of a partition, across all its objects, values by default.
        out = self.ok("cat", "arch", "0")
        self.assertEqual(out.splitlines(), [r[1].decode() for r in self.recs[0]])
        # From an offset inside a later object to the end, as JSON.
        start = [r for r in self.rows if r[0] == 0][2][1] + 7
        out = self.ok("cat", "arch", "0", "--from", str(start), "--format", "json")
        self.assertEqual([json.loads(x) for x in out.splitlines()],
                         [self.expect_json("arch", 0, i) for i in range(start, 2000)])
        # Snappy batches of partition 1, global flags anywhere on the line.
        out = self.ok("--format", "json", "cat", "-n", "2", "arch", "1", "--from", "598")
        self.assertEqual([json.loads(x) for x in out.splitlines()],
                         [self.expect_json("arch", 1, i) for i in (598, 599)])

    def test_cat_from_time(self):
        out = self.ok("cat", "arch", "1", "--from", "@%d" % (T0 + 1000000 + 250), "-n", "4",
                      "--format", "json")
        self.assertEqual([json.loads(x) for x in out.splitlines()],
                         [self.expect_json("arch", 1, i) for i in range(250, 254)])
        out = self.ok("cat", "arch", "0", "--from", "@2023-11-14T22:13:21", "-n", "1",
                      "-f", "%o %T\\n")
        self.assertEqual(out, "1000 %d\n" % (T0 + 1000))
        self.fails(1, "no archived record of arch/1 has a timestamp at or after",
                   "cat", "arch", "1", "--from", "@%d" % (T0 + 2000000))

    def test_cat_errors(self):
        self.fails(1, "offset 2000 is above the archive of arch/0: its last archived offset "
                   "is 1999", "cat", "arch", "0", "--from", "2000")
        self.fails(1, "unknown topic 'nope'", "cat", "nope", "0")
        self.fails(1, "unknown partition arch/5", "cat", "arch", "5")
        self.fails(2, "bad --from 'soon'", "cat", "arch", "0", "--from", "soon")
        self.fails(2, "bad --from '@yesterday'", "cat", "arch", "0", "--from", "@yesterday")
        self.fails(2, "bad --num", "cat", "arch", "0", "-n", "0")
        self.fails(2, "bad PARTITION 'x'", "cat", "arch", "x")
        self.fails(2, "needs TOPIC and PARTITION", "cat", "arch")
        self.fails(2, "bad format field", "cat", "arch", "0", "-f", "%q")
        self.fails(2, "give one -f/--format", "cat", "arch", "0", "-f", "%v", "-f", "json")
        # with --format json the error is one JSON object on stderr
        rc, out, err = self.cli("cat", "arch", "0", "-f", "%v", "--format", "json")
        self.assertEqual((rc, out), (2, ""))
        self.assertEqual(json.loads(err), {"error": "give one -f/--format (text, json or a "
                                           "record format)", "exit_code": 2})

    def test_missing_archive_and_bad_flags(self):
        self.fails(1, "no archive at file:///nonexistent/arch: no such directory", "ls",
                   "--archive", "file:///nonexistent/arch", archive=False)
        self.fails(1, "no archive at", "cat", "arch", "0", "--archive",
                   "file:///nonexistent/arch", archive=False)
        self.fails(2, "bad archive URL 'http://x'", "verify", "--archive", "http://x",
                   archive=False)
        self.fails(2, "unknown flag '--bogus' for 'strata archive ls'", "ls", "--bogus")
        self.fails(2, "unexpected argument", "verify", "extra")
        self.fails(2, "unknown command 'strata archive nosuch'", "nosuch")
        self.fails(1, "cannot read the index /nonexistent.db", "verify", "--index",
                   "/nonexistent.db")

    # ---- verify ----

    def test_verify_ok(self):
        out = self.ok("verify")
        n = len(self.rows)
        self.assertIn("%d objects" % n, out)
        self.assertIn("no index in the archive: checked objects only", out)
        self.assertEqual(out.splitlines()[-1], "OK")
        out = self.ok("verify", "--index", os.path.join(self.data, "remote-index.db"))
        self.assertIn("%d rows matched, 0 orphans, 0 rows without objects" % n, out)
        j = json.loads(self.ok("verify", "--format", "json", "--index",
                               os.path.join(self.data, "remote-index.db")))
        self.assertEqual((j["ok"], j["objects"], j["index_rows"], j["problems"]), (True, n, n, []))
        self.assertEqual(j["bytes"], sum(r[3] for r in self.rows))

    def copy(self):
        import shutil
        d = tempfile.mkdtemp(prefix="strata-cli-arch-copy-", dir=self.tmp.name)
        shutil.copytree(self.arch, os.path.join(d, "a"))
        return os.path.join(d, "a")

    def test_verify_finds_a_corrupt_byte(self):
        d = self.copy()
        key = [r for r in self.rows if r[0] == 0][1][4]
        path = os.path.join(d, key)
        with open(path, "r+b") as f:
            f.seek(100)
            b = f.read(1)
            f.seek(100)
            f.write(bytes([b[0] ^ 0x40]))
        rc, out, err = self.cli("verify", "--archive", "file://" + d, archive=False)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("strata: %s: cannot read: SHA-256 of the object does not match" % key, err)
        self.assertIn("FAILED: 1 problems", out)
        self.assertEqual(len(err.splitlines()), 1, err)
        # Without the file backend's checksum trailer the frame's zstd checksum catches it.
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - 56)
        rc, out, err = self.cli("verify", "--archive", "file://" + d, archive=False)
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(err, r"strata: %s: frame 0: " % re.escape(key))
        # cat stops with an error naming the object.
        rc, out, err = self.cli("cat", "arch", "0", "--archive", "file://" + d, archive=False)
        self.assertEqual(rc, 1)
        self.assertIn("cannot read %s: frame 0" % key, err)

    def test_verify_against_the_index(self):
        import shutil
        d = self.copy()
        p0 = [r for r in self.rows if r[0] == 0]
        gone = p0[-1][4]
        os.unlink(os.path.join(d, gone))
        first = p0[0][4]
        orphan = first.replace("/arch/0/", "/arch/7/")
        os.makedirs(os.path.dirname(os.path.join(d, orphan)))
        shutil.copy(os.path.join(d, first), os.path.join(d, orphan))
        idx = os.path.join(self.data, "remote-index.db")
        rc, out, err = self.cli("verify", "--archive", "file://" + d, "--index", idx,
                                archive=False)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("strata: %s: indexed but not in the archive" % gone, err)
        self.assertIn("strata: %s: orphan: no index row for this object" % orphan, err)
        self.assertIn("1 orphans, 1 rows without objects", out)
        # The same through an index snapshot uploaded into the archive.
        os.makedirs(os.path.join(d, "_strata"), exist_ok=True)
        shutil.copy(idx, os.path.join(d, "_strata", "remote-index.db"))
        rc, out2, err2 = self.cli("verify", "--archive", "file://" + d, archive=False)
        self.assertEqual(rc, 1, out2 + err2)
        self.assertIn("index _strata/remote-index.db: %d rows matched, 1 orphans, 1 rows "
                      "without objects" % (len(self.rows) - 1), out2)
        self.assertIn("%s: indexed but not in the archive" % gone, err2)
        # An archive whose head is gone: offsets below it.
        os.unlink(os.path.join(d, first))
        self.fails(1, "offset 0 is below the archive of arch/0: its first archived offset "
                   "is %d" % p0[1][1], "cat", "arch", "0", "--from", "0",
                   "--archive", "file://" + d, archive=False)


class ArchiveS3Test(unittest.TestCase):
    """The same commands on an S3 bucket (scripts/s3server.sh), with AWS_* settings."""

    def setUp(self):
        self.s3 = os.environ.get("STRATA_TEST_S3_URL")
        self.own = None
        if not self.s3:
            self.own = tempfile.mkdtemp(prefix="strata-s3-")
            self.s3 = start_s3(free_port(), self.own)
        self.tmp = tempfile.TemporaryDirectory(prefix="strata-cli-s3arch-")

    def tearDown(self):
        self.tmp.cleanup()
        if self.own:
            stop_s3(self.own)

    def cli(self, *args, env):
        e = dict(os.environ)
        e.pop("STRATA_ARCHIVE_URL", None)
        e.update(env)
        p = subprocess.run([STRATA, "archive", *args], capture_output=True, text=True, env=e,
                           timeout=300)
        return p.returncode, p.stdout, p.stderr

    def test_ls_cat_verify_on_s3(self):
        url = "s3://strata/cli-arch-%d" % os.getpid()
        env = s3_env(self.s3)
        data = os.path.join(self.tmp.name, "data")
        recs = write_archive(data, "s3arch", [900], ["lz4"], url=url, env=env)
        rows = archived_rows(data, "s3arch")
        rc, out, err = self.cli("ls", "--archive", url, "--format", "json", env=env)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["partitions"], [{
            "topic": "s3arch", "partition": 0, "first_offset": 0, "last_offset": 899,
            "first_timestamp": T0, "last_timestamp": T0 + 899, "objects": len(rows),
            "bytes": sum(r[3] for r in rows)}])
        rc, out, err = self.cli("cat", "s3arch", "0", "--archive", url, "--from", "450", "-n",
                                "3", "-f", "%o %T %k %v\\n", env=env)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.splitlines(), ["%d %d %s %s" % (i, T0 + i, (recs[0][i][0] or b"")
                                                            .decode(), recs[0][i][1].decode())
                                            for i in (450, 451, 452)])
        rc, out, err = self.cli("verify", "--archive", url, env=env)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("no index in the archive: checked objects only", out)
        rc, out, err = self.cli("verify", "--archive", url, "--index",
                                os.path.join(data, "remote-index.db"), env=env)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("%d rows matched, 0 orphans" % len(rows), out)
        rc, out, err = self.cli("cat", "nope", "0", "--archive", url, env=env)
        self.assertEqual(rc, 1)
        self.assertIn("unknown topic 'nope' in the archive %s" % url, err)
        # Nobody listens at the endpoint: a clear error, bounded by --timeout.
        rc, out, err = self.cli("--timeout", "3s", "ls", "--archive", url,
                                env=s3_env("http://127.0.0.1:%d" % free_port()))
        self.assertEqual(rc, 1, out + err)
        self.assertIn("strata: cannot list the archive %s" % url, err)


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
                # dev default: a first group consumer is not held 3 s (issue 21 item 6)
                r = subprocess.run([STRATA, *b, "cluster", "config", "get",
                                    "group.initial.rebalance.delay.ms"],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual((r.returncode, r.stdout), (0, "0\n"), r.stderr)
            finally:
                p.send_signal(signal.SIGTERM)
                p.communicate(timeout=60)
            self.assertEqual(p.returncode, 0)

    def test_start_refuses_a_busy_data_dir_and_port_with_its_own_flags(self):
        """A data directory in use, or a default port in use: strata start says so with
        its own flags (--data-dir, listener flags after --), not stratad's --log-dir."""
        b = Broker(smp=1)
        try:
            p = subprocess.run([STRATA, "start", "--data-dir", b.data], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("is in use by another broker", p.stderr)
            self.assertIn("--data-dir", p.stderr)
            self.assertNotIn("--log-dir", p.stderr)
        finally:
            b.stop()
            b.close()
        # the default Kafka port 9092 held here (or by someone else: busy either way)
        hold = socket.socket()
        try:
            try:
                hold.bind(("127.0.0.1", 9092))
                hold.listen(1)
            except OSError:
                pass
            with tempfile.TemporaryDirectory(prefix="strata-cli-port-") as d:
                p = subprocess.run([STRATA, "start", "-d", d, "--", "--admin-listener",
                                    "127.0.0.1:%d" % free_port()],
                                   capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("127.0.0.1:9092 is in use", p.stderr)
            self.assertIn("--listeners", p.stderr)
        finally:
            hold.close()

    def test_start_without_stratad(self):
        env = dict(os.environ, STRATAD="/nonexistent/stratad")
        r = subprocess.run([STRATA, "start"], capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot find stratad", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
