#!/usr/bin/python3
"""Listeners and TLS: named listeners with security protocols, advertised
addresses per listener, and SSL / mTLS with kcat, confluent-kafka,
kafka-python and kafkajs. The certificates (a CA, a server certificate for
127.0.0.1/localhost, client certificates for alice, an expired one and one from
an untrusted CA) are made by the openssl CLI in a temporary directory."""
import json
import os
import random
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import STRATAD, Broker, free_port  # noqa: E402
from kwire import frame, recv_frame  # noqa: E402

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def openssl(*args):
    p = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), p.stderr))


class Certs:
    """Test PKI in directory d. Each certificate NAME has NAME.key, NAME.pem
    (certificate) and NAME-full.pem (key then certificate, a PEM keystore)."""

    def __init__(self, d):
        self.d = d
        self.serial = random.randrange(1 << 32, 1 << 40)
        self.make_ca("ca", "/CN=Strata Test CA")
        self.make_ca("other-ca", "/CN=Untrusted Test CA")
        self.make_server("server")
        self.make("alice", "/O=Strata Test/CN=alice", "ca", "extendedKeyUsage=clientAuth")
        self.make("expired", "/O=Strata Test/CN=expired", "ca", "extendedKeyUsage=clientAuth",
                  days=-1)
        self.make("mallory", "/O=Strata Test/CN=mallory", "other-ca",
                  "extendedKeyUsage=clientAuth")

    def path(self, name, kind="pem"):
        return os.path.join(self.d, "%s.%s" % (name, kind) if kind != "full" else
                            "%s-full.pem" % name)

    def make_ca(self, name, subj):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", self.path(name, "key"), "-out", self.path(name), "-days", "2",
                "-subj", subj)

    def make_server(self, name):
        """A server certificate for 127.0.0.1 and localhost; returns its serial."""
        return self.make(name, "/CN=localhost", "ca",
                         "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                         "extendedKeyUsage=serverAuth")

    def make(self, name, subj, ca, ext, days=2):
        self.serial += 1
        csr, extf = self.path(name, "csr"), self.path(name, "ext")
        with open(extf, "w") as f:
            f.write(ext + "\n")
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", self.path(name, "key"), "-out", csr, "-subj", subj)
        openssl("x509", "-req", "-in", csr, "-CA", self.path(ca), "-CAkey", self.path(ca, "key"),
                "-set_serial", str(self.serial), "-days", str(days), "-extfile", extf,
                "-out", self.path(name))
        full = self.path(name, "full")
        with open(full + ".tmp", "w") as f:  # replaced at once: rotation reads whole files
            f.write(self.read(name, "key") + self.read(name))
        os.rename(full + ".tmp", full)
        return self.serial

    def read(self, name, kind="pem"):
        with open(self.path(name, kind)) as f:
            return f.read()


def tls_context(certs, client=None):
    ctx = ssl.create_default_context(cafile=certs.path("ca"))
    if client:
        ctx.load_cert_chain(certs.path(client), certs.path(client, "key"))
    return ctx


def tls_connect(certs, port, client=None, host="localhost"):
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    return tls_context(certs, client).wrap_socket(raw, server_hostname=host)


def tls_handshake_bio(certs, port):
    """A TLS session over memory BIOs on a raw socket, handshake done: the
    test then decides which ciphertext bytes go out, and how they are cut.
    Returns (socket, SSLObject, outgoing MemoryBIO)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = tls_context(certs).wrap_bio(inc, out, server_hostname="localhost")
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(out.read())
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed during the handshake")
            inc.write(data)
    sock.sendall(out.read())  # the client's Finished
    return sock, obj, out


def serial_of(s):
    """The serial number of the certificate the server of TLS socket s sent."""
    return int(s.getpeercert()["serialNumber"], 16)


def api_versions(s, corr=7):
    """One ApiVersions v0 round trip on socket s; returns its error code."""
    s.sendall(frame(18, 0, corr))
    data = recv_frame(s)
    size, got_corr, err = struct.unpack(">iih", data[:10])
    assert got_corr == corr, data
    return err


def read_until_closed(s):
    """Bytes the broker sends until it closes s (raises on a socket timeout)."""
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            return data
        if not chunk:
            return data
        data += chunk


def log_quiet_period():
    """Refused connections are logged at most once a second per shard: wait
    that long so that the next refusal gets its own line."""
    time.sleep(1.1)


def kcat(*args, input=None):
    p = subprocess.run(["kcat", *args], input=input, capture_output=True, text=True,
                       timeout=120)
    return p.returncode, p.stdout, p.stderr


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

    def check_config(self, *args):
        b = Broker(*args, "--check-config", start=False)
        p = subprocess.run([STRATAD, *b.args], capture_output=True, text=True, timeout=60)
        b.close()
        return p.returncode, p.stdout + p.stderr

    def test_bad_listener_configs_are_refused_with_the_reason(self):
        for args, msg in [
            (["--listeners", "CUSTOM://127.0.0.1:%d" % free_port()],
             "listener CUSTOM has no security protocol"),
            (["--listeners", "PLAINTEXT://127.0.0.1:1,SSL://127.0.0.1:1"], "same port"),
            (["--listeners", "PLAINTEXT://127.0.0.1:%d" % free_port(),
              "-X", "advertised.listeners=SSL://h:1"], "'SSL' is not the name of a listener"),
            (["--listeners", "SSL://127.0.0.1:%d" % free_port()],
             "listener SSL: TLS needs ssl.keystore.location"),
            (["-X", "listener.name.ssl.log.dir=x"], "unknown configuration key"),
        ]:
            rc, out = self.check_config(*args)
            self.assertNotEqual(rc, 0, out)
            self.assertIn(msg, out)


class TlsTest(unittest.TestCase):
    """One broker with a PLAINTEXT, an SSL and an mTLS listener (MTLS mapped to
    SSL, with listener.name.mtls.* overrides and its key given inline)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="strata-tls-")
        cls.certs = c = Certs(cls.tmp.name)
        cls.p_plain, cls.p_ssl, cls.p_mtls = free_port(), free_port(), free_port()
        cls.b = Broker(
            "--listeners", "PLAINTEXT://127.0.0.1:%d,SSL://127.0.0.1:%d,MTLS://127.0.0.1:%d"
            % (cls.p_plain, cls.p_ssl, cls.p_mtls),
            "-X", "listener.security.protocol.map=MTLS:SSL",
            "-X", "advertised.listeners=SSL://localhost:%d" % cls.p_ssl,
            "-X", "ssl.keystore.location=" + c.path("server", "full"),
            "-X", "listener.name.mtls.ssl.keystore.location=",
            "-X", "listener.name.mtls.ssl.keystore.certificate.chain=" + c.read("server"),
            "-X", "listener.name.mtls.ssl.keystore.key=" + c.read("server", "key"),
            "-X", "listener.name.mtls.ssl.client.auth=required",
            "-X", "listener.name.mtls.ssl.truststore.location=" + c.path("ca"),
            # An mTLS listener turns ACL authorization on: topics and groups
            # without ACLs stay open to every principal here.
            "-X", "allow.everyone.if.no.acl.found=true",
            "-X", "strata.ssl.handshake.timeout.ms=1000",
            "-X", "strata.ssl.reload.interval.ms=0",  # rotation here is by SIGHUP only
            port=cls.p_plain)

    @classmethod
    def tearDownClass(cls):
        rc, out = cls.b.stop()
        cls.b.close()
        cls.tmp.cleanup()
        assert rc == 0, out

    def ssl_conf(self, client=None):
        conf = {"security.protocol": "SSL", "ssl.ca.location": self.certs.path("ca")}
        if client:
            conf["ssl.certificate.location"] = self.certs.path(client)
            conf["ssl.key.location"] = self.certs.path(client, "key")
        return conf

    def listeners(self):
        """(name, bootstrap, client certificate) of the SSL and the mTLS listener."""
        return [("ssl", "127.0.0.1:%d" % self.p_ssl, None),
                ("mtls", "127.0.0.1:%d" % self.p_mtls, "alice")]

    # ---- Each client over SSL and mTLS ----

    def test_kcat_over_ssl_and_mtls(self):
        for name, bs, client in self.listeners():
            x = []
            for k, v in self.ssl_conf(client).items():
                x += ["-X", "%s=%s" % (k, v)]
            topic = "kcat-" + name
            lines = "".join("v%d\n" % i for i in range(50))
            rc, _, err = kcat("-b", bs, *x, "-P", "-t", topic, input=lines)
            self.assertEqual(rc, 0, err)
            rc, out, err = kcat("-b", bs, *x, "-C", "-t", topic, "-o", "beginning", "-e")
            self.assertEqual(rc, 0, err)
            self.assertEqual(out.splitlines(), ["v%d" % i for i in range(50)], err)

    def test_confluent_kafka_over_ssl_and_mtls(self):
        for name, bs, client in self.listeners():
            topic = "ck-" + name
            p = Producer({"bootstrap.servers": bs, "acks": "all", **self.ssl_conf(client)})
            for i in range(100):
                p.produce(topic, key=b"k%d" % i, value=b"ck-%d" % i)
            self.assertEqual(p.flush(60), 0)
            c = Consumer({"bootstrap.servers": bs, "group.id": "g-" + topic,
                          "auto.offset.reset": "earliest", **self.ssl_conf(client)})
            c.subscribe([topic])
            got = []
            deadline = time.monotonic() + 60
            while len(got) < 100 and time.monotonic() < deadline:
                m = c.poll(0.5)
                if m is None:
                    continue
                self.assertIsNone(m.error())
                got.append(m.value())
            c.close()
            self.assertEqual(got, [b"ck-%d" % i for i in range(100)])

    def test_kafka_python_over_ssl_and_mtls(self):
        import kafka
        for name, bs, client in self.listeners():
            conf = {"security_protocol": "SSL", "ssl_cafile": self.certs.path("ca")}
            if client:
                conf.update(ssl_certfile=self.certs.path(client),
                            ssl_keyfile=self.certs.path(client, "key"))
            topic = "kp-" + name
            p = kafka.KafkaProducer(bootstrap_servers=bs, acks="all", **conf)
            for i in range(100):
                p.send(topic, value=b"kp-%d" % i)
            p.flush(60)
            p.close()
            c = kafka.KafkaConsumer(topic, bootstrap_servers=bs, auto_offset_reset="earliest",
                                    consumer_timeout_ms=10000, group_id=None, **conf)
            got = [m.value for m in c]
            c.close()
            self.assertEqual(got, [b"kp-%d" % i for i in range(100)])

    def test_kafkajs_over_ssl_and_mtls(self):
        for name, bs, client in self.listeners():
            env = dict(os.environ, BOOTSTRAP=bs, TOPIC="js-" + name, CA=self.certs.path("ca"))
            if client:
                env.update(CERT=self.certs.path(client), KEY=self.certs.path(client, "key"))
            p = subprocess.run(["node", os.path.join(HERE, "js", "tls_kafkajs.js")], env=env,
                               capture_output=True, text=True, timeout=180)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("ok 20", p.stdout)

    # ---- Refusals ----

    def test_mtls_refuses_missing_expired_and_untrusted_certificates(self):
        log_quiet_period()
        for client, alert in [(None, "CERTIFICATE_REQUIRED"), ("expired", "CERTIFICATE_EXPIRED"),
                              ("mallory", "UNKNOWN_CA")]:
            with self.assertRaises((ssl.SSLError, ConnectionError)) as cm:
                s = tls_connect(self.certs, self.p_mtls, client)
                # TLS 1.3: the client's handshake ends first; the refusal is
                # the alert that comes instead of the answer.
                try:
                    api_versions(s)
                finally:
                    s.close()
            self.assertIn(alert, str(cm.exception).upper().replace(" ", "_"), client)
        # A real client with the expired certificate gets nothing either.
        x = []
        for k, v in self.ssl_conf("expired").items():
            x += ["-X", "%s=%s" % (k, v)]
        rc, out, err = kcat("-b", "127.0.0.1:%d" % self.p_mtls, *x, "-m", "10", "-L")
        self.assertNotEqual(rc, 0, out)
        self.b.wait_for(r"listener=MTLS \(SSL\): TLS handshake failed: client certificate",
                        seen=True)
        # alice still gets in.
        s = tls_connect(self.certs, self.p_mtls, "alice")
        self.assertEqual(api_versions(s), 0)
        s.close()

    def test_plaintext_client_on_tls_port_and_tls_client_on_plaintext_port(self):
        keep = tls_connect(self.certs, self.p_ssl)  # an unrelated connection stays up
        self.assertEqual(api_versions(keep), 0)
        # A Kafka request in clear on the SSL listener: closed, no Kafka answer.
        log_quiet_period()
        s = socket.create_connection(("127.0.0.1", self.p_ssl), timeout=30)
        s.sendall(frame(18, 0, 1))
        data = read_until_closed(s)
        s.close()
        self.assertFalse(data[:1] not in (b"", b"\x15"), data)  # nothing, or a TLS alert
        self.b.wait_for(r"listener=SSL \(SSL\): TLS handshake failed", seen=True)
        # A TLS client on the PLAINTEXT listener: its handshake fails.
        log_quiet_period()
        raw = socket.create_connection(("127.0.0.1", self.p_plain), timeout=30)
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            tls_context(self.certs).wrap_socket(raw, server_hostname="localhost")
        raw.close()
        self.b.wait_for(r"listener=PLAINTEXT \(PLAINTEXT\): a TLS handshake on a listener "
                        r"without TLS", seen=True)
        # librdkafka in clear on the TLS port gets no metadata.
        rc, out, err = kcat("-b", "127.0.0.1:%d" % self.p_ssl, "-m", "5", "-L")
        self.assertNotEqual(rc, 0, out)
        self.assertEqual(api_versions(keep, 8), 0)
        keep.close()

    def test_garbage_and_half_handshakes_close_only_that_connection(self):
        keep = tls_connect(self.certs, self.p_ssl)
        self.assertEqual(api_versions(keep), 0)
        # Garbage.
        s = socket.create_connection(("127.0.0.1", self.p_ssl), timeout=30)
        s.sendall(bytes(random.randrange(256) for _ in range(4096)))
        read_until_closed(s)
        s.close()
        # A real ClientHello, made with memory BIOs, sent in half; then a whole
        # one and silence. Both wait for a handshake that never ends and are
        # closed by strata.ssl.handshake.timeout.ms (1 s here).
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = tls_context(self.certs).wrap_bio(inc, out, server_hostname="localhost")
        with self.assertRaises(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = out.read()
        log_quiet_period()
        for part in (hello[:len(hello) // 2], hello):
            s = socket.create_connection(("127.0.0.1", self.p_ssl), timeout=60)
            s.sendall(part)
            read_until_closed(s)  # a socket timeout (60 s) fails the test
            s.close()
        self.b.wait_for("TLS handshake not finished within strata.ssl.handshake.timeout.ms",
                        seen=True)
        self.assertEqual(api_versions(keep, 9), 0)
        keep.close()

    def test_close_notify_is_a_clean_close(self):
        log_quiet_period()
        s = tls_connect(self.certs, self.p_ssl)
        self.assertEqual(api_versions(s), 0)
        try:
            s.unwrap()  # sends close_notify; the broker closes as on EOF
        except (ssl.SSLError, OSError):
            pass
        s.close()
        # Then a refused connection: its line comes after anything logged
        # for the first one, and a clean close logs nothing.
        g = socket.create_connection(("127.0.0.1", self.p_ssl), timeout=30)
        g.sendall(b"GET / HTTP/1.1\r\n\r\n")
        read_until_closed(g)
        g.close()
        self.b.wait_for(r"listener=SSL \(SSL\): TLS handshake failed")
        self.assertFalse([x for x in self.b.lines if "close_notify" in x])

    def test_buffers_return_to_the_pool_when_tls_connections_close(self):
        # Each client sends, in one write, 55 KB of a frame (its records fill
        # the broker's read buffer, which grows while decrypting) and then a
        # record that does not decrypt: the connection closes in the middle
        # of that read, and every byte the broker held must go back to the
        # queued.max.request.bytes pool.
        from test_admin import http, parse_metrics

        def metric(name):
            for _ in range(300):  # 503 while a shard is busy (an upper bound)
                status, _, text = http(self.b.admin_port, "GET", "/metrics")
                if status == 200:
                    return parse_metrics(text)[(name, frozenset())]
                time.sleep(0.1)
            raise AssertionError(text)

        for _ in range(10):
            sock, obj, out = tls_handshake_bio(self.certs, self.p_ssl)
            obj.write(struct.pack(">i", 1 << 20) + b"x" * 55000)
            sock.sendall(out.read() + b"\x17\x03\x03\x00\x20" + os.urandom(32))
            read_until_closed(sock)
            sock.close()
        for _ in range(300):  # the broker sees the closes (an upper bound, not a threshold)
            if metric("strata_kafka_connections") == 0:
                break
            time.sleep(0.1)
        self.assertEqual(metric("strata_kafka_connections"), 0)
        self.assertEqual(metric("strata_kafka_queued_request_bytes"), 0)

    # ---- Metadata ----

    def test_metadata_gives_the_advertised_address_of_the_listener_used(self):
        self.assertEqual(brokers_seen("127.0.0.1:%d" % self.p_plain),
                         [("127.0.0.1", self.p_plain)])
        self.assertEqual(brokers_seen("127.0.0.1:%d" % self.p_ssl, **self.ssl_conf()),
                         [("localhost", self.p_ssl)])
        self.assertEqual(brokers_seen("127.0.0.1:%d" % self.p_mtls, **self.ssl_conf("alice")),
                         [("127.0.0.1", self.p_mtls)])
        # The admin API lists the listeners the same way.
        from test_admin import http
        status, _, body = http(self.b.admin_port, "GET", "/v1/cluster")
        self.assertEqual(status, 200, body)
        self.assertEqual(
            [(x["name"], x["protocol"], x["address"], x["advertised"])
             for x in body["listeners"]["kafka_listeners"]],
            [("PLAINTEXT", "PLAINTEXT", "127.0.0.1:%d" % self.p_plain,
              "127.0.0.1:%d" % self.p_plain),
             ("SSL", "SSL", "127.0.0.1:%d" % self.p_ssl, "localhost:%d" % self.p_ssl),
             ("MTLS", "SSL", "127.0.0.1:%d" % self.p_mtls, "127.0.0.1:%d" % self.p_mtls)])

    # ---- Rotation ----

    def test_certificate_rotation_on_sighup_keeps_open_connections(self):
        old = tls_connect(self.certs, self.p_ssl)
        old_serial = serial_of(old)
        self.assertEqual(api_versions(old), 0)
        p = Producer({"bootstrap.servers": "127.0.0.1:%d" % self.p_ssl, **self.ssl_conf()})
        p.produce("rotate", value=b"before")
        self.assertEqual(p.flush(60), 0)
        new_serial = self.certs.make_server("server")  # rewrites server-full.pem
        self.assertNotEqual(new_serial, old_serial)
        self.b.proc.send_signal(signal.SIGHUP)
        self.b.wait_for(r"TLS certificates reloaded for SSL generation=2")
        # New connections get the new certificate...
        s = tls_connect(self.certs, self.p_ssl)
        self.assertEqual(serial_of(s), new_serial)
        self.assertEqual(api_versions(s), 0)
        s.close()
        # ...while the open ones keep working on theirs.
        self.assertEqual(api_versions(old, 11), 0)
        old.close()
        p.produce("rotate", value=b"after")
        self.assertEqual(p.flush(60), 0)
        c = Consumer({"bootstrap.servers": "127.0.0.1:%d" % self.p_ssl, "group.id": "rot",
                      **self.ssl_conf()})
        c.assign([TopicPartition("rotate", 0, 0)])
        got = []
        deadline = time.monotonic() + 60
        while len(got) < 2 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value())
        c.close()
        self.assertEqual(got, [b"before", b"after"])


class AdminTlsTest(unittest.TestCase):
    def test_admin_api_over_https(self):
        import http.client
        with tempfile.TemporaryDirectory(prefix="strata-tls-") as d:
            c = Certs(d)
            b = Broker("-X", "strata.admin.tls.enabled=true",
                       "-X", "strata.admin.tls.cert.file=" + c.path("server"),
                       "-X", "strata.admin.tls.key.file=" + c.path("server", "key"))
            try:
                b.wait_for(r"admin: listening on https://127\.0\.0\.1:%d" % b.admin_port,
                           seen=True)
                h = http.client.HTTPSConnection("localhost", b.admin_port, timeout=30,
                                                context=tls_context(c))
                for _ in range(2):  # keep-alive: two requests on one TLS session
                    h.request("GET", "/v1/cluster")
                    r = h.getresponse()
                    body = r.read()
                    self.assertEqual(r.status, 200, body)
                    doc = json.loads(body)
                    self.assertEqual(doc["listeners"]["kafka_listeners"], [
                        {"name": "PLAINTEXT", "protocol": "PLAINTEXT", "address": b.bootstrap,
                         "advertised": b.bootstrap}])
                h.close()
                # Plain http on the https port gets no answer.
                h = http.client.HTTPConnection("127.0.0.1", b.admin_port, timeout=30)
                with self.assertRaises((http.client.HTTPException, ConnectionError)):
                    h.request("GET", "/v1/status/live")
                    h.getresponse()
                h.close()
                # A client that does not trust the server's CA refuses it.
                h = http.client.HTTPSConnection("localhost", b.admin_port, timeout=30,
                                                context=ssl.create_default_context())
                with self.assertRaises(ssl.SSLError):
                    h.request("GET", "/v1/status/live")
                h.close()
            finally:
                rc, out = b.stop()
                b.close()
            self.assertEqual(rc, 0, out)


class TlsSettingsTest(unittest.TestCase):
    """ssl.enabled.protocols, ssl.cipher.suites (Kafka's IANA names), an
    encrypted PEM key (ssl.key.password) and a PKCS12 keystore."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="strata-tls-")
        cls.c = c = Certs(cls.tmp.name)
        openssl("pkey", "-in", c.path("server", "key"), "-aes256", "-passout", "pass:s3cret",
                "-out", c.path("server-enc", "key"))
        openssl("pkcs12", "-export", "-in", c.path("server"), "-inkey", c.path("server", "key"),
                "-passout", "pass:p12pass", "-out", c.path("server", "p12"))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def serve(self, *args):
        port = free_port()
        b = Broker("--listeners", "SSL://127.0.0.1:%d" % port, *args, port=port)
        self.addCleanup(b.close)
        return port

    def handshake(self, port, **ctx_settings):
        ctx = tls_context(self.c)
        for k, v in ctx_settings.items():
            setattr(ctx, k, v)
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30),
                            server_hostname="localhost")
        self.assertEqual(api_versions(s), 0)
        got = (s.version(), s.cipher()[0])
        s.close()
        return got

    def test_protocols_and_cipher_suites(self):
        key = ["-X", "ssl.keystore.location=" + self.c.path("server", "full")]
        port = self.serve(*key, "-X", "ssl.enabled.protocols=TLSv1.2",
                          "-X", "ssl.cipher.suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
        self.assertEqual(self.handshake(port), ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256"))
        port = self.serve(*key, "-X", "ssl.enabled.protocols=TLSv1.3",
                          "-X", "ssl.cipher.suites=TLS_CHACHA20_POLY1305_SHA256")
        self.assertEqual(self.handshake(port), ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256"))
        with self.assertRaises(ssl.SSLError):  # a TLS 1.2 client on a TLS 1.3-only listener
            self.handshake(port, maximum_version=ssl.TLSVersion.TLSv1_2)

    def test_encrypted_key_and_pkcs12_keystore(self):
        port = self.serve("-X", "ssl.keystore.certificate.chain=" + self.c.read("server"),
                          "-X", "ssl.keystore.key=" + self.c.read("server-enc", "key"),
                          "-X", "ssl.key.password=s3cret")
        self.assertEqual(self.handshake(port)[0], "TLSv1.3")
        port = self.serve("-X", "ssl.keystore.type=PKCS12",
                          "-X", "ssl.keystore.location=" + self.c.path("server", "p12"),
                          "-X", "ssl.keystore.password=p12pass")
        self.assertEqual(self.handshake(port)[0], "TLSv1.3")

    def test_bad_tls_settings_stop_the_start_with_the_reason(self):
        c = self.c
        for args, msg in [
            (["-X", "ssl.keystore.certificate.chain=" + c.read("server"),
              "-X", "ssl.keystore.key=" + c.read("server-enc", "key"),
              "-X", "ssl.key.password=wrong"], "cannot read the private key in ssl.keystore.key"),
            (["-X", "ssl.keystore.location=" + c.path("server"),  # a certificate, no key
              ], "cannot read the private key in " + c.path("server")),
            (["-X", "ssl.keystore.certificate.chain=" + c.read("server"),
              "-X", "ssl.keystore.key=" + c.read("alice", "key")],
             "the private key does not match the certificate"),
            (["-X", "ssl.keystore.type=PKCS12", "-X", "ssl.keystore.location=" +
              c.path("server", "p12"), "-X", "ssl.keystore.password=nope"],
             "cannot read the PKCS12 keystore"),
            (["-X", "ssl.keystore.location=" + c.path("server", "full"),
              "-X", "ssl.client.auth=required"],
             "ssl.client.auth=required needs the CAs of client certificates"),
            (["-X", "ssl.keystore.location=" + c.path("server", "full"),
              "-X", "ssl.client.auth=always"],
             "ssl.client.auth 'always' is not none, requested or required"),
            (["-X", "ssl.keystore.location=" + c.path("server", "full"),
              "-X", "ssl.enabled.protocols=TLSv1.1"],
             "ssl.enabled.protocols: 'TLSv1.1' is not supported"),
            (["-X", "ssl.keystore.location=" + c.path("server", "full"),
              "-X", "ssl.cipher.suites=TLS_NOPE"],
             "ssl.cipher.suites: unknown cipher suite 'TLS_NOPE'"),
        ]:
            b = Broker("--listeners", "SSL://127.0.0.1:%d" % free_port(), *args,
                       "--check-config", start=False)
            p = subprocess.run([STRATAD, *b.args], capture_output=True, text=True, timeout=60)
            b.close()
            self.assertNotEqual(p.returncode, 0, p.stdout)
            self.assertIn("listener SSL: " + msg, p.stderr)


class TlsReloadAndPrincipalTest(unittest.TestCase):
    def test_changed_files_reload_and_mtls_principal_is_the_subject(self):
        with tempfile.TemporaryDirectory(prefix="strata-tls-") as d:
            c = Certs(d)
            port = free_port()
            b = Broker("--listeners", "SSL://127.0.0.1:%d" % port,
                       "-X", "ssl.keystore.location=" + c.path("server", "full"),
                       "-X", "ssl.truststore.location=" + c.path("ca"),
                       "-X", "ssl.client.auth=requested",
                       "-X", "strata.ssl.reload.interval.ms=200",
                       "--log-level", "debug", port=port)
            try:
                s = tls_connect(c, port, "alice")
                self.assertEqual(api_versions(s), 0)
                b.wait_for(r"TLS conn=\d+ peer=\S+: TLSv1.3 \S+ principal=User:CN=alice,"
                           r"O=Strata Test$", seen=True)
                # ssl.client.auth=requested: no certificate is anonymous.
                s2 = tls_connect(c, port)
                self.assertEqual(api_versions(s2), 0)
                s2.close()
                b.wait_for(r"principal=User:ANONYMOUS$", seen=True)
                # A changed keystore file is picked up without a signal.
                serial = c.make_server("server")
                b.wait_for(r"TLS certificates reloaded for SSL generation=2")
                s3 = tls_connect(c, port)
                self.assertEqual(serial_of(s3), serial)
                s3.close()
                self.assertEqual(api_versions(s, 2), 0)
                s.close()
            finally:
                rc, out = b.stop()
                b.close()
            self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
