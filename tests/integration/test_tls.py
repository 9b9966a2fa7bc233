#!/usr/bin/python3
"""Listeners and TLS: named listeners with security protocols, advertised
addresses per listener, and (with certificates the tests make with the openssl
CLI) SSL and mTLS with kcat, confluent-kafka, kafka-python and kafkajs."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker, free_port  # noqa: E402

from confluent_kafka.admin import AdminClient  # noqa: E402


def brokers_seen(bootstrap, **conf):
    """The (host, port) of every broker in a Metadata answer from bootstrap."""
    a = AdminClient({"bootstrap.servers": bootstrap, **conf})
    md = a.list_topics(timeout=30)
    return sorted((b.host, b.port) for b in md.brokers.values())


class ListenersTest(unittest.TestCase):
    def test_named_listeners_advertise_their_own_address(self):
        p1, p2 = free_port(), free_port()
        b = Broker("--listeners", "PLAINTEXT://127.0.0.1:%d,INTERNAL://127.0.0.1:%d" % (p1, p2),
                   "-X", "listener.security.protocol.map=INTERNAL:PLAINTEXT",
                   "-X", "advertised.listeners=INTERNAL://localhost:%d" % p2)
        try:
            # Each listener answers Metadata with its own advertised address.
            self.assertEqual(brokers_seen("127.0.0.1:%d" % p1), [("127.0.0.1", p1)])
            self.assertEqual(brokers_seen("127.0.0.1:%d" % p2), [("localhost", p2)])
        finally:
            rc, out = b.stop()
            b.close()
        self.assertEqual(rc, 0, out)

    def test_bad_listener_configs_are_refused_with_the_reason(self):
        for args, msg in [
            (["--listeners", "CUSTOM://127.0.0.1:%d" % free_port()],
             "listener CUSTOM has no security protocol"),
            (["--listeners", "PLAINTEXT://127.0.0.1:1,SSL://127.0.0.1:1"], "same port"),
            (["--listeners", "PLAINTEXT://127.0.0.1:%d" % free_port(),
              "-X", "advertised.listeners=SSL://h:1"], "'SSL' is not the name of a listener"),
        ]:
            b = Broker(*args, start=False)
            b.args.append("--check-config")
            
            p = subprocess.run([os.environ.get("STRATAD", "build/tools/stratad"), *b.args],
                               capture_output=True, text=True, timeout=60)
            b.close()
            self.assertNotEqual(p.returncode, 0, p.stdout)
            self.assertIn(msg, p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
