#!/usr/bin/python3
"""Integration tests of the stratad process: start-up, configuration errors,
the data directory lock, graceful shutdown and partition recovery.
Runs the real binary (env STRATAD) in temporary directories."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Proc as Broker  # noqa: E402
from broker import Broker as KafkaBroker  # noqa: E402

STRATAD = os.environ.get("STRATAD", "build/tools/stratad")
CRASH_TEST = os.environ.get("CRASH_TEST", "build/tests/crash_test")


def run(*args, cwd=None, env=None):
    p = subprocess.run([STRATAD, *args], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=30)
    return p.returncode, p.stdout + p.stderr


class StratadTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_starts_with_defaults_and_stops_cleanly_on_sigterm(self):
        b = Broker("--smp", "2", cwd=self.dir)
        m = b.wait_for(r"started .*shards=(\d+) .*log.dir=(\S+) .*archive=(\S+)")
        self.assertEqual(m.group(1), "2")
        self.assertEqual(m.group(2), "./data")
        self.assertEqual(m.group(3), "file://./data/archive")
        self.assertTrue(os.path.isdir(os.path.join(self.dir, "data", "archive")))
        rc, out = b.stop()
        self.assertEqual(rc, 0, out)
        self.assertIn("stopped cleanly", out)

    def test_sigint_also_stops_cleanly(self):
        b = Broker("--log-dir", self.dir + "/d", "--smp", "1")
        b.wait_for("started")
        rc, out = b.stop(signal.SIGINT)
        self.assertEqual(rc, 0, out)
        self.assertIn("received SIGINT", out)

    def test_second_broker_on_same_dir_refuses(self):
        b = Broker("--log-dir", self.dir, "--smp", "1")
        b.wait_for("started")
        rc, out = run("--log-dir", self.dir, "--smp", "1")
        self.assertEqual(rc, 1)
        self.assertIn("data directory %s is in use by another stratad (pid %d)"
                      % (self.dir, b.proc.pid), out)
        rc, out = b.stop()
        self.assertEqual(rc, 0, out)
        # The lock is released: a new broker starts.
        b = Broker("--log-dir", self.dir, "--smp", "1")
        b.wait_for("started")
        self.assertEqual(b.stop()[0], 0)

    def test_second_broker_on_same_port_refuses(self):
        # Shards share their port with SO_REUSEPORT; another broker must not join them.
        from broker import free_port
        port = free_port()
        b = Broker("--log-dir", self.dir + "/a", "--smp", "2", "--listeners",
                   "127.0.0.1:%d" % port, "--admin-listener", "127.0.0.1:%d" % free_port())
        b.wait_for("started")
        rc, out = run("--log-dir", self.dir + "/b", "--smp", "1", "--listeners",
                      "127.0.0.1:%d" % port, "--admin-listener", "127.0.0.1:%d" % free_port())
        self.assertEqual(rc, 1, out)
        self.assertIn("listener PLAINTEXT 127.0.0.1:%d: the address is already in use" % port, out)
        self.assertEqual(b.stop()[0], 0)

    def test_lock_released_after_kill9(self):
        b = Broker("--log-dir", self.dir, "--smp", "1")
        b.wait_for("started")
        b.kill9()
        b = Broker("--log-dir", self.dir, "--smp", "1")
        b.wait_for("started")
        self.assertEqual(b.stop()[0], 0)

    def test_config_errors_name_the_key(self):
        cases = [
            (["-X", "log.segmnt.bytes=5"], "unknown configuration key 'log.segmnt.bytes'"),
            (["--set", "log.segment.bytes=big"], "log.segment.bytes: 'big' is not an integer"),
            (["--smp", "-1"], "strata.smp: -1 is out of range"),
            (["--listeners", "nohostport"], "listeners: 'nohostport' is not HOST:PORT"),
            (["--log-level", "chatty"], "strata.log.level: 'chatty' is not one of"),
            (["-X", "novalue"], "--set expects KEY=VALUE"),
            (["--config", self.dir + "/missing.yaml"], "cannot read config file"),
            (["extra-arg"], "unexpected argument 'extra-arg'"),
        ]
        for args, msg in cases:
            rc, out = run(*args, cwd=self.dir)
            self.assertEqual(rc, 2, (args, out))
            self.assertIn(msg, out, args)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "data")))

    def test_yaml_config_env_and_flag_precedence(self):
        cfg = os.path.join(self.dir, "strata.yaml")
        with open(cfg, "w") as f:
            f.write("log.dir: %s/from-file\nlog:\n  segment.bytes: 1MiB\nstrata.smp: 3\n"
                    % self.dir)
        rc, out = run("--config", cfg, "--check-config")
        self.assertEqual(rc, 0, out)
        with open(cfg, "a") as f:
            f.write("log.retention.hours: 5\n")
        rc, out = run("--config", cfg)
        self.assertEqual(rc, 2)
        self.assertRegex(out, r"strata.yaml:5: unknown configuration key 'log.retention.hours'")
        with open(cfg, "w") as f:
            f.write("log.dir: %s/from-file\nstrata.smp: 3\n" % self.dir)
        env = dict(os.environ, STRATA_STRATA_SMP="2", STRATA_LOG_DIR=self.dir + "/from-env")
        b = Broker("--config", cfg, env=env)
        m = b.wait_for(r"started .*shards=(\d+) .*log.dir=(\S+)")
        self.assertEqual(m.group(1), "2")          # env beats the file
        self.assertEqual(m.group(2), self.dir + "/from-env")
        self.assertEqual(b.stop()[0], 0)
        b = Broker("--config", cfg, "--smp", "1", env=env)
        m = b.wait_for(r"started .*shards=(\d+)")
        self.assertEqual(m.group(1), "1")          # flags beat env
        self.assertEqual(b.stop()[0], 0)
        rc, out = run("--check-config", env=dict(os.environ, STRATA_LOG_RETENTION_MS="x"))
        self.assertEqual(rc, 2)
        self.assertIn("STRATA_LOG_RETENTION_MS: log.retention.ms: 'x' is not an integer", out)

    def test_recovers_partitions_written_before_a_crash(self):
        # A writer appends durable batches to orders-0 and orders-1, then dies by kill -9.
        acked = {}
        for p in (0, 1):
            w = subprocess.Popen([CRASH_TEST, "child", "%s/orders-%d" % (self.dir, p), "7"],
                                 stdout=subprocess.PIPE, text=True)
            last = None
            for _ in range(200):
                last = w.stdout.readline().split()
            w.kill()
            w.wait()
            w.stdout.close()
            acked[p] = int(last[0]) + int(last[1])
        b = Broker("--log-dir", self.dir, "--smp", "2")
        b.wait_for(r"started .* logs\.open=2 ")  # no topic in the metadata: partitions=0
        rc, out = b.stop()
        self.assertEqual(rc, 0, out)
        for p in (0, 1):
            m = re.search(r"recovered tp=orders-%d start=0 end=(\d+)" % p, out)
            self.assertIsNotNone(m, out)
            self.assertGreaterEqual(int(m.group(1)), acked[p])

    def test_started_line_counts_the_topics_partitions(self):
        # partitions= is what the topics have (metadata); logs.open= the local logs the shards
        # recovered. A partition's log is made on its first use, so after a restart only the
        # written partition has one.
        from confluent_kafka.admin import AdminClient, NewTopic
        b = KafkaBroker(data=self.dir)
        try:
            b.wait_for(r"started .* partitions=0 logs\.open=0 ", seen=True)
            a = AdminClient({"bootstrap.servers": b.bootstrap, "log_level": 0})
            for f in a.create_topics([NewTopic("four", 4, 1), NewTopic("one", 1, 1)]).values():
                f.result(30)
            del a
            p = subprocess.run(["kcat", "-b", b.bootstrap, "-P", "-t", "four", "-p", "2"],
                               input="x\n", capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            rc, out = b.stop()
            self.assertEqual(rc, 0, out)
            b.start()
            b.wait_for(r"started .* partitions=5 logs\.open=1 ", seen=True)
        finally:
            b.close()

    def test_help_and_version(self):
        rc, out = run("--help")
        self.assertEqual(rc, 0)
        self.assertIn("--config FILE", out)
        rc, out = run("--version")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"stratad \d+\.\d+\.\d+")
        rc, out = run("--help-config")
        self.assertEqual(rc, 0)
        self.assertIn("`log.segment.bytes`", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
