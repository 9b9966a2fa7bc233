#!/usr/bin/python3
"""`strata security acl|user` and the CLI's own TLS/SASL settings against a real stratad
(in test_cli.py's style: text and JSON output, exit codes, failures): users over the admin
API with HTTP Basic, ACLs over the Kafka API as a SCRAM super user, the effect of an ACL on
another user's CLI, flags vs STRATA_* environment vs profile fields, TLS with a CA and mTLS
(certificates made by the openssl CLI at test time), bash completion.
STRATA is the CLI binary, STRATAD the broker."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker, free_port  # noqa: E402
import test_cli  # noqa: E402  (helpers; test classes of imported modules are not collected)
import test_tls  # noqa: E402  (Certs)

STRATA = os.environ.get("STRATA", "build/tools/strata")
ADMIN = ("admin", "admin-Pass-1")


class SecurityCliTest(unittest.TestCase):
    """A broker with PLAINTEXT and SASL_PLAINTEXT listeners, admin a super user and the
    admin API requiring authentication."""

    @classmethod
    def setUpClass(cls):
        cls.home = tempfile.TemporaryDirectory(prefix="strata-cli-home-")
        cls.b = Broker(start=False, env=dict(os.environ, STRATA_BOOTSTRAP_USER="%s:%s" % ADMIN))
        cls.sasl = "127.0.0.1:%d" % free_port()
        cls.b.args += ["--listeners", "PLAINTEXT://%s,SASL_PLAINTEXT://%s" % (cls.b.bootstrap,
                                                                              cls.sasl),
                       "-X", "super.users=User:admin", "-X", "strata.admin.require.auth=true"]
        cls.b.start()

    @classmethod
    def tearDownClass(cls):
        rc, out = cls.b.stop()
        cls.b.close()
        cls.home.cleanup()
        assert rc == 0 and "Sanitizer" not in out, out[-4000:]
        for secret in (ADMIN[1], "alice-Pass-2", "alice-Pass-3"):
            assert secret not in out, "a password reached the log"

    def run_cli(self, *args, env=None, auth=True):
        e = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
        e["HOME"] = self.home.name
        e.update(env or {})
        cmd = [STRATA, "--brokers", self.sasl,
               "--admin-url", "http://127.0.0.1:%d" % self.b.admin_port]
        if auth:
            cmd += ["--user", ADMIN[0], "--password", ADMIN[1]]
        p = subprocess.run(cmd + list(args), capture_output=True, text=True, env=e, timeout=60)
        return p.returncode, p.stdout, p.stderr

    ok = test_cli.CliTest.ok  # they call self.run_cli
    json = test_cli.CliTest.json
    fails = test_cli.CliTest.fails

    def acls(self, *flags):
        return sorted((a["principal"], a["resource_type"], a["resource_name"],
                       a["pattern_type"], a["operation"], a["permission"])
                      for a in self.json("security", "acl", "list", *flags))

    def test_users_and_acls_end_to_end(self):
        out = self.ok("security", "user", "create", "alice", "--new-password", "alice-Pass-2")
        self.assertIn("Created user alice", out)
        users = {u["name"] for u in self.json("security", "user", "list")}
        self.assertEqual(users, {"admin", "alice"})
        self.assertIn("alice", self.ok("security", "user", "list"))
        self.fails(1, "409", "security", "user", "create", "alice", "-p", "x")
        # The admin API wants authentication: without --user it answers 401.
        self.fails(1, "401", "security", "user", "list", auth=False)

        self.ok("topic", "create", "team.orders")
        self.ok("topic", "create", "other")
        alice = ["--user", "alice", "--password", "alice-Pass-2"]
        # alice may see nothing until an ACL says so.
        self.assertEqual(self.json(*alice, "topic", "list", auth=False), [])
        out = self.ok("security", "acl", "create", "--allow-principal", "alice", "--operation",
                      "describe,read", "--topic", "team.", "--resource-pattern-type", "prefixed")
        self.assertIn("User:alice", out)
        self.assertEqual(self.acls(), [
            ("User:alice", "TOPIC", "team.", "PREFIXED", "DESCRIBE", "ALLOW"),
            ("User:alice", "TOPIC", "team.", "PREFIXED", "READ", "ALLOW")])
        names = [t["name"] for t in self.json(*alice, "topic", "list", auth=False)]
        self.assertEqual(names, ["team.orders"])
        # Only ALTER on the cluster may create ACLs.
        self.fails(1, "Cluster authorization failed", *alice, "security", "acl", "create",
                   "--allow-principal", "alice", "--operation", "all", "--topic", "other",
                   auth=False)
        # Filters: MATCH finds the prefixed ACL for a topic name; DENY on a group and the
        # cluster; list by principal.
        self.assertEqual(len(self.acls("--topic", "team.x", "--resource-pattern-type", "match")),
                         2)
        self.ok("security", "acl", "create", "--deny-principal", "User:bob", "--operation", "all",
                "--group", "g1", "--cluster")
        self.assertEqual(self.acls("--deny-principal", "bob"), [
            ("User:bob", "CLUSTER", "kafka-cluster", "LITERAL", "ALL", "DENY"),
            ("User:bob", "GROUP", "g1", "LITERAL", "ALL", "DENY")])
        self.fails(2, "never removes every ACL", "security", "acl", "delete")
        out = self.ok("security", "acl", "delete", "--deny-principal", "bob")
        self.assertEqual(out.count("User:bob"), 2)
        self.assertEqual(len(self.acls()), 2)
        deleted = self.json("security", "acl", "delete", "--topic", "team.",
                            "--resource-pattern-type", "prefixed", "--operation", "read")
        self.assertEqual([d["operation"] for d in deleted], ["READ"])
        self.assertEqual(len(self.acls()), 1)

        # Password change, then the new one logs in with either SCRAM mechanism.
        self.ok("security", "user", "update", "alice", "--new-password", "alice-Pass-3")
        self.fails(1, "", "--user", "alice", "--password", "alice-Pass-2", "--timeout", "3s",
                   "topic", "list", auth=False)
        for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            self.ok("--user", "alice", "--password", "alice-Pass-3", "--sasl-mechanism", mech,
                    "topic", "list", auth=False)
        self.ok("security", "user", "delete", "alice")
        self.assertEqual({u["name"] for u in self.json("security", "user", "list")}, {"admin"})
        self.fails(1, "404", "security", "user", "delete", "alice")

    def test_settings_from_environment_and_profile(self):
        self.ok("security", "acl", "create", "--allow-principal", "User:*", "--operation",
                "describe", "--topic", "env-visible")
        self.ok("topic", "create", "env-visible")
        env = {"STRATA_USER": ADMIN[0], "STRATA_PASSWORD": ADMIN[1],
               "STRATA_SASL_MECHANISM": "SCRAM-SHA-512"}
        self.assertIn("env-visible", self.ok("topic", "list", env=env, auth=False))
        prof = os.path.join(self.home.name, ".config", "strata")
        os.makedirs(prof, exist_ok=True)
        with open(os.path.join(prof, "strata.yaml"), "w") as f:
            f.write("sasl:\n  mechanism: SCRAM-SHA-256\nuser: %s\npassword: %s\n" % ADMIN)
        try:
            self.assertIn("env-visible", self.ok("security", "acl", "list", auth=False))
            # A flag beats the profile: a wrong password fails.
            self.fails(1, "", "--password", "wrong", "--timeout", "3s", "topic", "list",
                       auth=False)
        finally:
            os.remove(os.path.join(prof, "strata.yaml"))
        self.ok("security", "acl", "delete", "--topic", "env-visible")

    def test_transactional_id_acls_listed_and_deleted(self):
        from kafka.admin import (ACL, ACLOperation, ACLPermissionType, KafkaAdminClient,
                                 ResourcePattern, ResourceType)
        k = KafkaAdminClient(bootstrap_servers=self.sasl, security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="SCRAM-SHA-256", sasl_plain_username=ADMIN[0],
                             sasl_plain_password=ADMIN[1])
        try:
            r = k.create_acls([ACL("User:tx", "*", ACLOperation.WRITE, ACLPermissionType.ALLOW,
                                   ResourcePattern(ResourceType.TRANSACTIONAL_ID, "tx1"))])
            self.assertEqual(r["failed"], [])
        finally:
            k.close()
        # librdkafka 2.0 reads the resource type TRANSACTIONAL_ID as UNKNOWN.
        try:
            self.assertEqual(self.acls("--allow-principal", "tx"), [
                ("User:tx", "UNKNOWN", "tx1", "LITERAL", "WRITE", "ALLOW")])
        finally:
            self.ok("security", "acl", "delete", "--allow-principal", "tx")
        self.assertEqual(self.acls("--allow-principal", "tx"), [])

    def test_usage_errors_and_help(self):
        self.fails(2, "--transactional-id", "security", "acl", "create", "--allow-principal",
                   "a", "--operation", "write", "--transactional-id", "tx")
        self.fails(2, "--operation", "security", "acl", "create", "--allow-principal", "a",
                   "--topic", "t")
        self.fails(2, "bad --operation", "security", "acl", "create", "--allow-principal", "a",
                   "--operation", "fly", "--topic", "t")
        self.fails(2, "give a resource", "security", "acl", "create", "--allow-principal", "a",
                   "--operation", "read")
        self.fails(2, "literal or prefixed", "security", "acl", "create", "--allow-principal",
                   "a", "--operation", "read", "--topic", "t", "--resource-pattern-type", "match")
        self.fails(2, "--new-password", "security", "user", "create", "carol")
        self.fails(2, "SCRAM-SHA-256 or SCRAM-SHA-512", "security", "user", "create", "carol",
                   "-p", "x", "--mechanism", "MD5")
        for cmd in (["security"], ["security", "acl"], ["security", "user"]):
            self.assertIn("Commands:", self.ok(*cmd, "--help"))
        out = self.ok("security", "acl", "create", "--help")
        for flag in ("--allow-principal", "--deny-principal", "--operation", "--topic",
                     "--group", "--cluster", "--transactional-id", "--resource-pattern-type",
                     "--allow-host"):
            self.assertIn(flag, out)
        self.assertIn("--tls-truststore", self.ok("--help"))

    def test_completion(self):
        script = self.ok("completion", "bash")

        def complete(*words):
            p = subprocess.run(["bash", "-c", script + "\nCOMP_WORDS=(strata %s); "
                                "COMP_CWORD=%d; _strata; echo ${COMPREPLY[@]}"
                                % (" ".join(words), len(words))],
                               capture_output=True, text=True)
            return sorted(p.stdout.split())  # completion order follows --help; only the set matters
        self.assertEqual(complete("sec"), ["security"])
        self.assertEqual(complete("security", "a"), ["acl"])
        self.assertEqual(complete("security", "acl", "cr"), ["create"])
        self.assertEqual(complete("security", "user", "up"), ["update"])
        self.assertEqual(complete("security", "acl", "create", "--allow-"),
                         ["--allow-host", "--allow-principal"])
        self.assertEqual(complete("security", "acl", "create", "--operation", "idem"),
                         ["idempotent_write"])
        self.assertEqual(complete("--tls-"), sorted(["--tls-enabled", "--tls-truststore", "--tls-ca",
                                                     "--tls-cert", "--tls-key"]))


class TlsCliTest(unittest.TestCase):
    """The CLI over SASL_SSL (a CA from --tls-ca / the profile's tls.ca) and over mTLS."""

    def test_sasl_ssl_and_mtls(self):
        with tempfile.TemporaryDirectory(prefix="strata-cli-tls-") as d:
            c = test_tls.Certs(d)
            p_sasl, p_mtls = free_port(), free_port()
            b = Broker("--listeners", "SASL_SSL://127.0.0.1:%d,SSL://127.0.0.1:%d"
                       % (p_sasl, p_mtls),
                       "-X", "ssl.keystore.location=" + c.path("server", "full"),
                       "-X", "listener.name.ssl.ssl.client.auth=required",
                       "-X", "listener.name.ssl.ssl.truststore.location=" + c.path("ca"),
                       "-X", "super.users=User:admin;User:CN=alice,O=Strata Test",
                       port=p_sasl,
                       env=dict(os.environ, STRATA_BOOTSTRAP_USER="%s:%s" % ADMIN))
            home = os.path.join(d, "home")
            os.makedirs(os.path.join(home, ".config", "strata"))
            env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
            env["HOME"] = home

            def cli(*args):
                p = subprocess.run([STRATA, "--timeout", "5s", *args], capture_output=True,
                                   text=True, env=env, timeout=60)
                return p.returncode, p.stdout + p.stderr
            try:
                sasl = ["--brokers", "localhost:%d" % p_sasl, "--user", ADMIN[0],
                        "--password", ADMIN[1]]
                rc, out = cli(*sasl, "--tls-ca", c.path("ca"), "topic", "create", "tls-t")
                self.assertEqual(rc, 0, out)
                # Without the CA the server certificate is not trusted.
                rc, out = cli(*sasl, "--tls-enabled", "topic", "list")
                self.assertNotEqual(rc, 0, out)
                # The profile's tls.ca, sasl.mechanism, user and password.
                with open(os.path.join(home, ".config", "strata", "strata.yaml"), "w") as f:
                    f.write("brokers: localhost:%d\ntls.ca: %s\nsasl.mechanism: SCRAM-SHA-512\n"
                            "user: %s\npassword: %s\n" % ((p_sasl, c.path("ca")) + ADMIN))
                rc, out = cli("topic", "list")
                self.assertEqual(rc, 0, out)
                self.assertIn("tls-t", out)
                # mTLS: the certificate's subject is a super user.
                os.remove(os.path.join(home, ".config", "strata", "strata.yaml"))
                rc, out = cli("--brokers", "localhost:%d" % p_mtls, "--tls-ca", c.path("ca"),
                              "--tls-cert", c.path("alice"), "--tls-key", c.path("alice", "key"),
                              "security", "acl", "list")
                self.assertEqual(rc, 0, out)
            finally:
                rc, out = b.stop()
                b.close()
            self.assertEqual(rc, 0, out[-4000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
