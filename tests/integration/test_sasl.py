#!/usr/bin/python3
"""SASL integration tests: real clients (kcat, confluent-kafka/librdkafka,
kafka-python, kafkajs) against a real stratad with a SASL_PLAINTEXT listener,
mechanisms PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512; failed logins (wrong
password and unknown user answer the same); requests before authentication;
SaslHandshake v0's raw tokens; connections.max.reauth.ms (expiry closes the
connection, re-authentication renews it; kafkajs re-authenticates by itself);
SCRAM users managed with Describe/AlterUserScramCredentials (raw frames: none
of the Python clients here has them) and over the admin API; the admin API's
HTTP Basic authentication; no password in logs or configs."""
import base64
import hashlib
import hmac
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker, free_port  # noqa: E402
from kwire import Reader, uvarint  # noqa: E402
from test_admin import http, parse_metrics, metric  # noqa: E402

from confluent_kafka import Consumer, Producer  # noqa: E402
from kafka.scram import ScramClient  # noqa: E402

JS_DIR = os.path.join(os.path.dirname(__file__), "js")
MECHS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
ALICE = ("alice", "alice-Secret-1")
FAILED_MSG = "Authentication failed: invalid credentials with SASL mechanism %s"

API_SASL_HANDSHAKE, API_SASL_AUTHENTICATE = 17, 36
API_METADATA, API_API_VERSIONS = 3, 18
API_DESCRIBE_SCRAM, API_ALTER_SCRAM = 50, 51
ERR_UNSUPPORTED_SASL_MECHANISM, ERR_ILLEGAL_SASL_STATE = 33, 34
ERR_SASL_AUTHENTICATION_FAILED = 58
ERR_CLUSTER_AUTHORIZATION_FAILED = 31
ERR_RESOURCE_NOT_FOUND, ERR_DUPLICATE_RESOURCE, ERR_UNACCEPTABLE_CREDENTIAL = 91, 92, 93


# ---- Wire helpers ----

def s16(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">h", len(b)) + b


def b32(b):
    return struct.pack(">i", len(b)) + b


def cstr(s):
    b = s.encode()
    return uvarint(len(b) + 1) + b


def cbytes(b):
    return uvarint(len(b) + 1) + b


def request(api, ver, corr, body=b"", flexible=False):
    hdr = struct.pack(">hhi", api, ver, corr) + s16("sasl-test") + (b"\x00" if flexible else b"")
    return struct.pack(">i", len(hdr) + len(body)) + hdr + body


class Wire:
    """One raw Kafka connection; call() returns a Reader after the
    correlation id (and the tagged fields of a flexible response header)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.corr = 0
        self.buf = b""  # bytes of the next responses (pipelined requests)

    def send(self, data):
        self.s.sendall(data)

    def recv_frame(self):
        data = self.buf
        while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the broker")
            data += chunk
        end = 4 + struct.unpack(">i", data[:4])[0]
        self.buf = data[end:]
        return data[4:end]

    def call(self, api, ver, body=b"", flexible=False):
        self.corr += 1
        self.send(request(api, ver, self.corr, body, flexible))
        r = Reader(self.recv_frame())
        assert r.take(">i") == self.corr
        if flexible:
            r.tags()
        return r

    def raw_token(self, token):
        """SaslHandshake v0: a bare length-prefixed token each way."""
        self.send(struct.pack(">i", len(token)) + token)
        return self.recv_frame()

    def is_closed(self):
        """True once the broker closed the connection (EOF or reset)."""
        try:
            self.s.settimeout(15)
            return self.s.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True

    def close(self):
        self.s.close()


def handshake(w, mech, ver=1):
    r = w.call(API_SASL_HANDSHAKE, ver, s16(mech))
    err = r.take(">h")
    return err, [r.str16() for _ in range(r.take(">i"))]


def authenticate(w, token, ver=1):
    """(error, message, auth bytes, session lifetime or None) of SaslAuthenticate."""
    r = w.call(API_SASL_AUTHENTICATE, ver, b32(token))
    err, msg, auth = r.take(">h"), r.str16(), r.bytes32()
    return err, msg, auth, (r.take(">q") if ver >= 1 else None)


def login(w, mech, user, password, ver=1):
    """A whole login on w; the last SaslAuthenticate's (error, message, lifetime)."""
    err, _ = handshake(w, mech)
    assert err == 0, err
    if mech == "PLAIN":
        e, m, _, life = authenticate(w, b"\0" + user.encode() + b"\0" + password.encode(), ver)
        return e, m, life
    sc = ScramClient(user, password, mech)
    e, m, server_first, life = authenticate(w, sc.first_message().encode(), ver)
    if e:
        return e, m, life
    sc.process_server_first_message(server_first.decode())
    e, m, server_final, life = authenticate(w, sc.final_message().encode(), ver)
    if e == 0:
        sc.process_server_final_message(server_final.decode())  # checks the server's signature
    return e, m, life


def metadata_ok(w):
    r = w.call(API_METADATA, 1, struct.pack(">i", -1))
    return r.take(">i") >= 1  # brokers


def salted(mech, password, salt, iterations):
    return hashlib.pbkdf2_hmac(mech.split("-", 1)[1].replace("-", "").lower(), password.encode(),
                               salt, iterations)


def alter_scram(port, deletions=(), upsertions=(), login_as=ALICE):
    """AlterUserScramCredentials v0 sent by login_as: [(user, error, message)]."""
    body = uvarint(len(deletions) + 1)
    for name, mech in deletions:
        body += cstr(name) + struct.pack(">b", mech) + b"\x00"
    body += uvarint(len(upsertions) + 1)
    for name, mech, iterations, salt, salted_pw in upsertions:
        body += (cstr(name) + struct.pack(">bi", mech, iterations) + cbytes(salt)
                 + cbytes(salted_pw) + b"\x00")
    body += b"\x00"
    w = Wire(port)
    try:
        assert login(w, "PLAIN", *login_as)[0] == 0
        r = w.call(API_ALTER_SCRAM, 0, body, flexible=True)
        r.take(">i")
        out = []
        for _ in range(r.uvarint() - 1):
            out.append((r.cstr(), r.take(">h"), r.cstr()))
            r.tags()
        return out
    finally:
        w.close()


def describe_scram(port, users=None):
    """DescribeUserScramCredentials v0: (error, {user: (error, {mech: iterations})})."""
    if users is None:
        body = uvarint(0)
    else:
        body = uvarint(len(users) + 1) + b"".join(cstr(u) + b"\x00" for u in users)
    body += b"\x00"
    w = Wire(port)
    try:
        assert login(w, "SCRAM-SHA-256", *ALICE)[0] == 0
        r = w.call(API_DESCRIBE_SCRAM, 0, body, flexible=True)
        r.take(">i")
        err = r.take(">h")
        r.cstr()
        out = {}
        for _ in range(r.uvarint() - 1):
            user, uerr = r.cstr(), r.take(">h")
            r.cstr()
            creds = {}
            for _ in range(r.uvarint() - 1):
                mech, iterations = r.take(">b"), r.take(">i")
                r.tags()
                creds[mech] = iterations
            r.tags()
            out[user] = (uerr, creds)
        return err, out
    finally:
        w.close()


# ---- Clients ----

def rdkafka_conf(port, mech, user, password, ca=None):
    """librdkafka settings; with ca (a CA file) SASL_SSL, else SASL_PLAINTEXT."""
    conf = {"bootstrap.servers": "127.0.0.1:%d" % port, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": mech, "sasl.username": user, "sasl.password": password}
    if ca:
        conf.update({"security.protocol": "SASL_SSL", "ssl.ca.location": ca})
    return conf


def confluent_roundtrip(port, mech, user, password, topic, n=5, ca=None):
    conf = rdkafka_conf(port, mech, user, password, ca)
    p = Producer(dict(conf, **{"message.timeout.ms": 20000}))
    errs = []
    for i in range(n):
        p.produce(topic, b"ck-%d" % i, callback=lambda e, m: errs.append(e))
    p.flush(30)
    assert errs == [None] * n, errs
    c = Consumer(dict(conf, **{"group.id": "g-" + topic, "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and not m.error():
            got.append(m.value())
    c.close()
    return got


def kcat(port, mech, user, password, *args, input=None, ca=None):
    conf = rdkafka_conf(port, mech, user, password, ca)
    del conf["bootstrap.servers"]
    xs = [a for k, v in conf.items() for a in ("-X", "%s=%s" % (k, v))]
    return subprocess.run(["kcat", "-b", "127.0.0.1:%d" % port, *xs, *args],
                          input=input, capture_output=True, timeout=60)


def kafka_python_roundtrip(port, mech, user, password, topic, n=5, ca=None):
    from kafka import KafkaConsumer, KafkaProducer
    conf = dict(bootstrap_servers="127.0.0.1:%d" % port, security_protocol="SASL_PLAINTEXT",
                sasl_mechanism=mech, sasl_plain_username=user, sasl_plain_password=password)
    if ca:
        conf.update(security_protocol="SASL_SSL", ssl_cafile=ca)
    p = KafkaProducer(**conf)
    for i in range(n):
        p.send(topic, b"kp-%d" % i).get(timeout=30)
    p.close()
    c = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=30000,
                      group_id="g-" + topic, **conf)
    got = []
    for m in c:
        got.append(m.value)
        if len(got) == n:
            break
    c.close()
    return got


def kafkajs(port, mech, user, password, topic, n=5, ca=None):
    env = dict(os.environ, SASL_JS_CA=ca) if ca else None
    out = subprocess.run(["node", "sasl_client.js", "127.0.0.1:%d" % port, mech.lower(), user,
                          password, topic, str(n)], cwd=JS_DIR, capture_output=True, timeout=120,
                         env=env)
    lines = out.stdout.decode().strip().splitlines()
    assert lines, out.stderr.decode()
    return json.loads(lines[-1])


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


class SaslTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        port = free_port()
        cls.b = Broker("--listeners", "SASL_PLAINTEXT://127.0.0.1:%d" % port,
                       "-X", "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
                       "-X", "strata.admin.require.auth=true",
                       # Authorization is on with a SASL listener: alice is a super
                       # user, and topics without ACLs are open to every user.
                       "-X", "super.users=User:alice", "-X", "allow.everyone.if.no.acl.found=true",
                       port=port, env=dict(os.environ, STRATA_BOOTSTRAP_USER="%s:%s" % ALICE))

    @classmethod
    def tearDownClass(cls):
        rc, out = cls.b.stop()
        cls.b.close()
        assert rc == 0, out  # a clean exit (under ASan: no sanitizer report)
        # No password ever reaches the log.
        for secret in (ALICE[1], "bob-Pass-2", "wrong-password", "carol-Pass-3"):
            assert secret not in out, secret

    def admin(self, method, path, body=None, auth=ALICE):
        return http(self.b.admin_port, method, path, body=body,
                    headers=basic(*auth) if auth else None)

    # -- clients --

    def test_kcat_each_mechanism(self):
        for mech in MECHS:
            topic = "kcat-" + mech.lower()
            r = kcat(self.b.port, mech, *ALICE, "-P", "-t", topic, input=b"a\nb\nc\n")
            self.assertEqual(r.returncode, 0, r.stderr)
            r = kcat(self.b.port, mech, *ALICE, "-C", "-t", topic, "-e", "-o", "beginning")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.split(), [b"a", b"b", b"c"])

    def test_confluent_each_mechanism(self):
        for mech in MECHS:
            topic = "ck-" + mech.lower()
            got = confluent_roundtrip(self.b.port, mech, *ALICE, topic)
            self.assertEqual(got, [b"ck-%d" % i for i in range(5)], mech)

    def test_kafka_python_each_mechanism(self):
        # kafka-python 2.0.2 uses SaslHandshake v0 and unframed tokens.
        for mech in MECHS:
            topic = "kp-" + mech.lower()
            got = kafka_python_roundtrip(self.b.port, mech, *ALICE, topic)
            self.assertEqual(got, [b"kp-%d" % i for i in range(5)], mech)

    def test_kafkajs_each_mechanism(self):
        for mech in MECHS:
            res = kafkajs(self.b.port, mech, *ALICE, "js-" + mech.lower(), 4)
            self.assertEqual(res.get("consumed"), ["js-%d" % i for i in range(4)], res)

    def test_kafkajs_wrong_password_refused(self):
        res = kafkajs(self.b.port, "SCRAM-SHA-512", ALICE[0], "wrong-password", "js-refused", 1)
        self.assertIn("error", res)
        self.assertIn(FAILED_MSG % "SCRAM-SHA-512", res["error"])

    # -- refusals --

    def test_wrong_password_and_unknown_user_answer_the_same(self):
        def failures():
            st, _, text = self.admin("GET", "/metrics")
            self.assertEqual(st, 200)
            return metric(parse_metrics(text), "strata_kafka_sasl_authentication_failures_total")
        before = failures()
        n = 0
        for mech in MECHS:
            answers = []
            for user, password in ((ALICE[0], "wrong-password"), ("nobody", "wrong-password")):
                w = Wire(self.b.port)
                err, msg, _ = login(w, mech, user, password)
                answers.append((err, msg))
                self.assertTrue(w.is_closed(), "a failed login closes the connection")
                w.close()
                n += 1
            self.assertEqual(answers[0], answers[1], mech)
            self.assertEqual(answers[0], (ERR_SASL_AUTHENTICATION_FAILED, FAILED_MSG % mech))
        self.assertEqual(failures() - before, n)

    def test_unknown_scram_user_gets_a_stable_salt(self):
        def first(user):
            w = Wire(self.b.port)
            handshake(w, "SCRAM-SHA-256")
            sc = ScramClient(user, "x", "SCRAM-SHA-256")
            e, _, sf, _ = authenticate(w, sc.first_message().encode())
            w.close()
            self.assertEqual(e, 0)
            return dict(kv.split("=", 1) for kv in sf.decode().split(","))
        a, b, real = first("ghost"), first("ghost"), first(ALICE[0])
        self.assertEqual((a["s"], a["i"]), (b["s"], b["i"]))  # same salt every time, like a real user
        self.assertEqual(a["i"], real["i"])
        self.assertEqual(len(base64.b64decode(a["s"])), len(base64.b64decode(real["s"])))

    def test_requests_before_authentication_close_the_connection(self):
        # ApiVersions is allowed before authentication.
        w = Wire(self.b.port)
        r = w.call(API_API_VERSIONS, 0)
        self.assertEqual(r.take(">h"), 0)
        # Metadata is not: the connection closes without an answer.
        w.send(request(API_METADATA, 1, 9, struct.pack(">i", -1)))
        self.assertTrue(w.is_closed())
        w.close()
        # Nor after a handshake that was not followed by a login.
        w = Wire(self.b.port)
        self.assertEqual(handshake(w, "PLAIN")[0], 0)
        w.send(request(API_METADATA, 1, 9, struct.pack(">i", -1)))
        self.assertTrue(w.is_closed())
        w.close()
        # SaslAuthenticate before a handshake: ILLEGAL_SASL_STATE, then closed.
        w = Wire(self.b.port)
        err, _, _, _ = authenticate(w, b"\0alice\0x")
        self.assertEqual(err, ERR_ILLEGAL_SASL_STATE)
        self.assertTrue(w.is_closed())
        w.close()
        # An unknown mechanism: UNSUPPORTED_SASL_MECHANISM with the enabled ones.
        w = Wire(self.b.port)
        err, mechs = handshake(w, "GSSAPI")
        self.assertEqual(err, ERR_UNSUPPORTED_SASL_MECHANISM)
        self.assertEqual(sorted(mechs), sorted(MECHS))
        self.assertTrue(w.is_closed())
        w.close()
        # A frame larger than 512 KiB before authentication closes the connection.
        w = Wire(self.b.port)
        w.send(struct.pack(">i", 600000))
        self.assertTrue(w.is_closed())
        w.close()
        # After a login, Metadata is served.
        w = Wire(self.b.port)
        self.assertEqual(login(w, "SCRAM-SHA-512", *ALICE)[0], 0)
        self.assertTrue(metadata_ok(w))
        w.close()

    def test_requests_pipelined_behind_a_login(self):
        """A client may send its next requests right behind SaslAuthenticate: they wait
        for the login (PLAIN is verified on the thread pool) and run as its principal.
        DescribeUserScramCredentials needs DESCRIBE on the cluster, which only the super
        user alice has: its answer proves the principal, not just that the connection
        stayed open. A failed login closes the connection without running them."""

        def check_rest(w, corr_meta):
            r = Reader(w.recv_frame())
            self.assertEqual(r.take(">i"), corr_meta)
            self.assertGreaterEqual(r.take(">i"), 1)  # Metadata v1: the brokers
            r = Reader(w.recv_frame())
            self.assertEqual(r.take(">i"), corr_meta + 1)
            r.tags()
            r.take(">i")  # throttle
            self.assertEqual(r.take(">h"), 0)  # not CLUSTER_AUTHORIZATION_FAILED

        def check_auth(w, corr, ok=True):
            r = Reader(w.recv_frame())
            self.assertEqual(r.take(">i"), corr)
            err = r.take(">h")
            self.assertEqual(err, 0 if ok else ERR_SASL_AUTHENTICATION_FAILED, r.str16())

        metadata = request(API_METADATA, 1, 3, struct.pack(">i", -1))
        describe = request(API_DESCRIBE_SCRAM, 0, 4, uvarint(0) + b"\x00", flexible=True)
        plain = b"\0alice\0" + ALICE[1].encode()
        for _ in range(3):  # the verification is a race with the next frames: try it again
            # PLAIN: SaslHandshake + SaslAuthenticate + Metadata + Describe... in one write.
            w = Wire(self.b.port)
            w.send(request(API_SASL_HANDSHAKE, 1, 1, s16("PLAIN")) +
                   request(API_SASL_AUTHENTICATE, 1, 2, b32(plain)) + metadata + describe)
            self.assertEqual(Reader(w.recv_frame()).take(">i"), 1)
            check_auth(w, 2)
            check_rest(w, 3)
            w.close()
            # SaslHandshake v0: the raw PLAIN token, then the framed requests.
            w = Wire(self.b.port)
            w.send(request(API_SASL_HANDSHAKE, 0, 1, s16("PLAIN")) +
                   struct.pack(">i", len(plain)) + plain + metadata + describe)
            self.assertEqual(Reader(w.recv_frame()).take(">i"), 1)
            self.assertEqual(w.recv_frame(), b"")  # the raw answer: an empty token
            check_rest(w, 3)
            w.close()
            # SCRAM: the final message and the requests in one write.
            w = Wire(self.b.port)
            sc = ScramClient(ALICE[0], ALICE[1], "SCRAM-SHA-512")
            self.assertEqual(handshake(w, "SCRAM-SHA-512")[0], 0)
            e, _, server_first, _ = authenticate(w, sc.first_message().encode())
            self.assertEqual(e, 0)
            sc.process_server_first_message(server_first.decode())
            w.send(request(API_SASL_AUTHENTICATE, 1, 2, b32(sc.final_message().encode())) +
                   metadata + describe)
            check_auth(w, 2)
            check_rest(w, 3)
            w.close()
            # A wrong password: the answer, then the connection closes; nothing else runs.
            w = Wire(self.b.port)
            w.send(request(API_SASL_HANDSHAKE, 1, 1, s16("PLAIN")) +
                   request(API_SASL_AUTHENTICATE, 1, 2, b32(b"\0alice\0wrong-password")) +
                   metadata + describe)
            self.assertEqual(Reader(w.recv_frame()).take(">i"), 1)
            check_auth(w, 2, ok=False)
            self.assertTrue(w.is_closed())
            w.close()

    def test_malformed_tokens_are_refused(self):
        bad_first = [b"", b"p=tls-unique,,n=alice,r=abc", b"n,,n=alice", b"\xff" * 300,
                     b"n,,n=" + b"a" * 400 + b",r=x", b"n,a=bob,n=alice,r=abc", b"\0" * 16]
        for tok in bad_first:
            w = Wire(self.b.port)
            self.assertEqual(handshake(w, "SCRAM-SHA-256")[0], 0)
            err, msg, _, _ = authenticate(w, tok)
            self.assertEqual(err, ERR_SASL_AUTHENTICATION_FAILED, tok)
            self.assertTrue(w.is_closed(), tok)
            w.close()
        sc = ScramClient(ALICE[0], ALICE[1], "SCRAM-SHA-256")
        bad_final = [b"c=biws,r=wrong,p=AAAA", b"c=eSws,r=%s,p=AAAA", b"c=biws,r=%s",
                     b"c=biws,r=%s,p=!!!!", b"\xfe" * 100]
        for tmpl in bad_final:
            w = Wire(self.b.port)
            self.assertEqual(handshake(w, "SCRAM-SHA-256")[0], 0)
            e, _, sf, _ = authenticate(w, sc.first_message().encode())
            self.assertEqual(e, 0)
            nonce = dict(kv.split("=", 1) for kv in sf.decode().split(","))["r"].encode()
            tok = tmpl % nonce if b"%s" in tmpl else tmpl
            err, _, _, _ = authenticate(w, tok)
            self.assertEqual(err, ERR_SASL_AUTHENTICATION_FAILED, tok)
            self.assertTrue(w.is_closed(), tok)
            w.close()
        for tok in (b"alice\0pw", b"\0alice\0", b"\0\0pw", b"bob\0alice\0" + ALICE[1].encode()):
            w = Wire(self.b.port)
            self.assertEqual(handshake(w, "PLAIN")[0], 0)
            self.assertEqual(authenticate(w, tok)[0], ERR_SASL_AUTHENTICATION_FAILED, tok)
            w.close()
        w = Wire(self.b.port)  # the broker is fine
        self.assertEqual(login(w, "SCRAM-SHA-256", *ALICE)[0], 0)
        w.close()

    def test_sasl_authenticate_v2_flexible(self):
        # Java clients send SaslAuthenticate v2 (flexible: compact bytes, tagged fields).
        w = Wire(self.b.port)
        self.assertEqual(handshake(w, "PLAIN")[0], 0)
        token = b"\0alice\0" + ALICE[1].encode()
        r = w.call(API_SASL_AUTHENTICATE, 2, cbytes(token) + b"\x00", flexible=True)
        err, msg = r.take(">h"), r.cstr()
        n = r.uvarint() - 1
        auth, r.o = r.d[r.o:r.o + n], r.o + n
        self.assertEqual((err, msg, auth), (0, None, b""))
        self.assertEqual(r.take(">q"), 0)  # session_lifetime_ms: no connections.max.reauth.ms
        self.assertTrue(metadata_ok(w))
        w.close()

    def test_handshake_v0_raw_tokens(self):
        w = Wire(self.b.port)
        self.assertEqual(handshake(w, "PLAIN", ver=0)[0], 0)
        self.assertEqual(w.raw_token(b"\0alice\0" + ALICE[1].encode()), b"")  # empty token: ok
        self.assertTrue(metadata_ok(w))
        w.close()
        w = Wire(self.b.port)
        self.assertEqual(handshake(w, "PLAIN", ver=0)[0], 0)
        w.send(struct.pack(">i", 21) + b"\0alice\0wrong-password")
        self.assertTrue(w.is_closed())  # a raw exchange is refused by closing
        w.close()

    # -- users over the Kafka API --

    def test_scram_users_over_the_kafka_api(self):
        port = self.b.port
        salt = os.urandom(16)
        res = alter_scram(port, upsertions=[
            ("bob", 1, 4096, salt, salted("SCRAM-SHA-256", "bob-Pass-2", salt, 4096)),
            ("bob", 2, 8192, salt, salted("SCRAM-SHA-512", "bob-Pass-2", salt, 8192)),
            ("weak", 1, 100, salt, b"x" * 32),
            ("dup", 1, 4096, salt, b"x" * 32), ("dup", 1, 4096, salt, b"x" * 32),
            ("odd", 9, 4096, salt, b"x" * 32)])
        self.assertEqual(res, [("bob", 0, None), ("weak", ERR_UNACCEPTABLE_CREDENTIAL, "Too few iterations"),
                               ("dup", ERR_DUPLICATE_RESOURCE,
                                "A user credential cannot be altered twice in the same request"),
                               ("odd", ERR_UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism")])
        err, users = describe_scram(port, ["bob", "nobody"])
        self.assertEqual(err, 0)
        self.assertEqual(users["bob"], (0, {1: 4096, 2: 8192}))
        self.assertEqual(users["nobody"][0], ERR_RESOURCE_NOT_FOUND)
        err, users = describe_scram(port)
        self.assertEqual(set(users), {"alice", "bob"})
        # bob logs in with both mechanisms and PLAIN, with real clients.
        got = confluent_roundtrip(port, "SCRAM-SHA-256", "bob", "bob-Pass-2", "bob-topic", 2)
        self.assertEqual(got, [b"ck-0", b"ck-1"])
        for mech in MECHS:
            w = Wire(port)
            self.assertEqual(login(w, mech, "bob", "bob-Pass-2")[0], 0, mech)
            w.close()
        # Deleting one mechanism leaves the other; deleting an absent one is an error.
        self.assertEqual(alter_scram(port, deletions=[("bob", 1)]), [("bob", 0, None)])
        w = Wire(port)
        self.assertEqual(login(w, "SCRAM-SHA-256", "bob", "bob-Pass-2")[0],
                         ERR_SASL_AUTHENTICATION_FAILED)
        w.close()
        w = Wire(port)
        self.assertEqual(login(w, "SCRAM-SHA-512", "bob", "bob-Pass-2")[0], 0)
        w.close()
        res = alter_scram(port, deletions=[("bob", 1)])
        self.assertEqual(res[0][:2], ("bob", ERR_RESOURCE_NOT_FOUND))
        self.assertEqual(alter_scram(port, deletions=[("bob", 2)]), [("bob", 0, None)])
        self.assertEqual(describe_scram(port, ["bob"])[1]["bob"][0], ERR_RESOURCE_NOT_FOUND)

    # -- admin API --

    def test_admin_api_basic_auth_and_users(self):
        st, hdrs, _ = self.admin("GET", "/v1/cluster", auth=None)
        self.assertEqual(st, 401)
        self.assertIn("Basic", hdrs.get("WWW-Authenticate", ""))
        self.assertEqual(self.admin("GET", "/v1/cluster", auth=(ALICE[0], "wrong-password"))[0], 401)
        self.assertEqual(self.admin("GET", "/v1/cluster", auth=("nobody", "x"))[0], 401)
        self.assertEqual(self.admin("GET", "/metrics", auth=None)[0], 401)
        self.assertEqual(self.admin("GET", "/v1/status/ready", auth=None)[0], 200)  # probes stay open
        self.assertEqual(self.admin("GET", "/v1/cluster")[0], 200)
        # Users: create, list, log in over Kafka, change the password, delete.
        st, _, doc = self.admin("POST", "/v1/security/users",
                                json.dumps({"username": "carol", "password": "carol-Pass-3",
                                            "algorithm": "SCRAM-SHA-512"}))
        self.assertEqual(st, 201, doc)
        self.assertEqual(self.admin("POST", "/v1/security/users",
                                    json.dumps({"username": "carol", "password": "x"}))[0], 409)
        st, _, doc = self.admin("GET", "/v1/security/users")
        carol = [u for u in doc["users"] if u["name"] == "carol"]
        self.assertEqual(carol, [{"name": "carol", "credentials": [
            {"mechanism": "SCRAM-SHA-512", "iterations": 4096}]}])
        self.assertNotIn("carol-Pass-3", json.dumps(doc))
        w = Wire(self.b.port)
        self.assertEqual(login(w, "SCRAM-SHA-512", "carol", "carol-Pass-3")[0], 0)
        w.close()
        # With authorization on, only super users (alice) may use the admin API.
        self.assertEqual(self.admin("GET", "/v1/cluster", auth=("carol", "carol-Pass-3"))[0], 403)
        st, _, _ = self.admin("PUT", "/v1/security/users/carol", json.dumps({"password": "carol-Pass-4"}))
        self.assertEqual(st, 200)
        self.assertEqual(self.admin("GET", "/v1/cluster", auth=("carol", "carol-Pass-3"))[0], 401)
        w = Wire(self.b.port)
        self.assertEqual(login(w, "PLAIN", "carol", "carol-Pass-4")[0], 0)
        w.close()
        self.assertEqual(self.admin("DELETE", "/v1/security/users/carol")[0], 200)
        self.assertEqual(self.admin("DELETE", "/v1/security/users/carol")[0], 404)
        self.assertEqual(self.admin("PUT", "/v1/security/users/carol",
                                    json.dumps({"password": "x"}))[0], 404)
        w = Wire(self.b.port)
        self.assertEqual(login(w, "PLAIN", "carol", "carol-Pass-4")[0], ERR_SASL_AUTHENTICATION_FAILED)
        w.close()
        st, _, doc = self.admin("GET", "/metrics")
        self.assertGreaterEqual(metric(parse_metrics(doc), "strata_admin_authentication_failures_total"), 4)

    def test_no_password_in_configs(self):
        st, _, doc = self.admin("GET", "/v1/cluster/config")
        self.assertEqual(st, 200)
        self.assertNotIn(ALICE[1], json.dumps(doc))
        from confluent_kafka.admin import AdminClient, ConfigResource
        a = AdminClient(rdkafka_conf(self.b.port, "SCRAM-SHA-256", *ALICE))
        res = ConfigResource(ConfigResource.Type.BROKER, "0")
        entries = a.describe_configs([res])[res].result(30)
        self.assertIn("sasl.enabled.mechanisms", entries)
        self.assertNotIn(ALICE[1], repr([(e.name, e.value) for e in entries.values()]))


class ReauthTest(unittest.TestCase):
    """connections.max.reauth.ms (KIP-368) on a broker whose sessions last 1.5 s."""

    LIFETIME_MS = 1500

    @classmethod
    def setUpClass(cls):
        port = free_port()
        cls.scram_port = free_port()
        cls.b = Broker("--listeners", "SASL_PLAINTEXT://127.0.0.1:%d,SCRAMONLY://127.0.0.1:%d"
                       % (port, cls.scram_port),
                       "-X", "listener.security.protocol.map=SCRAMONLY:SASL_PLAINTEXT",
                       "-X", "listener.name.scramonly.sasl.enabled.mechanisms=SCRAM-SHA-256",
                       "-X", "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512",
                       "-X", "connections.max.reauth.ms=%d" % cls.LIFETIME_MS,
                       "-X", "super.users=User:alice",
                       port=port, env=dict(os.environ, STRATA_BOOTSTRAP_USER="%s:%s" % ALICE))

    @classmethod
    def tearDownClass(cls):
        rc, out = cls.b.stop()
        cls.b.close()
        assert rc == 0, out

    def test_mechanisms_per_listener(self):
        w = Wire(self.scram_port)
        self.assertEqual(handshake(w, "PLAIN"), (ERR_UNSUPPORTED_SASL_MECHANISM, ["SCRAM-SHA-256"]))
        w.close()
        w = Wire(self.scram_port)
        self.assertEqual(login(w, "SCRAM-SHA-256", *ALICE)[0], 0)
        self.assertTrue(metadata_ok(w))
        w.close()
        w = Wire(self.b.port)
        self.assertEqual(handshake(w, "SCRAM-SHA-256"),
                         (ERR_UNSUPPORTED_SASL_MECHANISM, ["SCRAM-SHA-512", "PLAIN"]))
        w.close()

    def test_expired_session_is_closed_on_its_next_request(self):
        w = Wire(self.b.port)
        err, _, life = login(w, "SCRAM-SHA-512", *ALICE)
        self.assertEqual((err, life), (0, self.LIFETIME_MS))
        time.sleep(self.LIFETIME_MS / 1000 + 0.5)
        w.send(request(API_METADATA, 1, 77, struct.pack(">i", -1)))
        self.assertTrue(w.is_closed())
        w.close()

    def test_reauthentication_renews_the_session(self):
        w = Wire(self.b.port)
        self.assertEqual(login(w, "PLAIN", *ALICE)[0], 0)
        for _ in range(2):
            time.sleep(self.LIFETIME_MS / 1000 + 0.5)  # expired: only a re-authentication is served
            err, _, life = login(w, "PLAIN", *ALICE)
            self.assertEqual((err, life), (0, self.LIFETIME_MS))
            self.assertTrue(metadata_ok(w))
        w.close()

    def test_reauthentication_cannot_change_the_principal(self):
        st, _, _ = http(self.b.admin_port, "POST", "/v1/security/users",
                        json.dumps({"username": "dave", "password": "dave-pass"}))
        self.assertEqual(st, 201)
        w = Wire(self.b.port)
        self.assertEqual(login(w, "PLAIN", *ALICE)[0], 0)
        err, _, _ = login(w, "PLAIN", "dave", "dave-pass")
        self.assertEqual(err, ERR_SASL_AUTHENTICATION_FAILED)
        self.assertTrue(w.is_closed())
        w.close()
        # Nor the mechanism.
        w = Wire(self.b.port)
        self.assertEqual(login(w, "PLAIN", *ALICE)[0], 0)
        self.assertEqual(handshake(w, "SCRAM-SHA-512")[0], ERR_UNSUPPORTED_SASL_MECHANISM)
        w.close()
        # dave is no super user and has no ALTER on the cluster: he cannot change credentials.
        res = alter_scram(self.b.port, deletions=[("alice", 2)], login_as=("dave", "dave-pass"))
        self.assertEqual(res, [("alice", ERR_CLUSTER_AUTHORIZATION_FAILED, None)])
        w = Wire(self.b.port)
        self.assertEqual(login(w, "SCRAM-SHA-512", *ALICE)[0], 0)
        w.close()

    def test_kafkajs_reauthenticates_by_itself(self):
        def counts():
            m = parse_metrics(http(self.b.admin_port, "GET", "/metrics")[2])
            return (metric(m, "strata_kafka_sasl_authentications_total"),
                    metric(m, "strata_kafka_connections_accepted_total"))
        auth0, conn0 = counts()
        res = kafkajs(self.b.port, "SCRAM-SHA-512", *ALICE, "js-reauth", 5)
        self.assertEqual(res.get("consumed"), ["js-%d" % i for i in range(5)], res)
        auth1, conn1 = counts()
        # kafkajs re-authenticates a connection whose session is about to end
        # (its reauthenticationThreshold is 10 s > 1.5 s: before each request),
        # so there are more logins than connections.
        self.assertGreater(auth1 - auth0, conn1 - conn0)


class SaslSslTest(unittest.TestCase):
    """SASL_SSL with SCRAM-SHA-512 for every client; the server's key is given
    inline (ssl.keystore.key), a secret that no config listing shows."""

    @classmethod
    def setUpClass(cls):
        from test_tls import Certs
        cls.tmp = tempfile.TemporaryDirectory(prefix="strata-sasl-ssl-")
        cls.certs = c = Certs(cls.tmp.name)
        cls.ca = c.path("ca")
        cls.key = c.read("server", "key")
        port = free_port()
        cls.b = Broker("--listeners", "SASL_SSL://127.0.0.1:%d" % port,
                       "-X", "ssl.keystore.certificate.chain=" + c.read("server"),
                       "-X", "ssl.keystore.key=" + cls.key,
                       "-X", "sasl.enabled.mechanisms=SCRAM-SHA-512",
                       "-X", "super.users=User:alice",
                       port=port, env=dict(os.environ, STRATA_BOOTSTRAP_USER="%s:%s" % ALICE))

    @classmethod
    def tearDownClass(cls):
        rc, out = cls.b.stop()
        cls.b.close()
        cls.tmp.cleanup()
        assert rc == 0, out
        assert ALICE[1] not in out
        assert "PRIVATE KEY" not in out

    def test_every_client_over_sasl_ssl_scram_sha_512(self):
        port, mech = self.b.port, "SCRAM-SHA-512"
        r = kcat(port, mech, *ALICE, "-P", "-t", "ssl-kcat", input=b"x\ny\n", ca=self.ca)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = kcat(port, mech, *ALICE, "-C", "-t", "ssl-kcat", "-e", "-o", "beginning", ca=self.ca)
        self.assertEqual(r.stdout.split(), [b"x", b"y"], r.stderr)
        self.assertEqual(confluent_roundtrip(port, mech, *ALICE, "ssl-ck", 3, ca=self.ca),
                         [b"ck-%d" % i for i in range(3)])
        self.assertEqual(kafka_python_roundtrip(port, mech, *ALICE, "ssl-kp", 3, ca=self.ca),
                         [b"kp-%d" % i for i in range(3)])
        res = kafkajs(port, mech, *ALICE, "ssl-js", 3, ca=self.ca)
        self.assertEqual(res.get("consumed"), ["js-%d" % i for i in range(3)], res)
        # A wrong password is refused over TLS too.
        r = kcat(port, mech, ALICE[0], "wrong-password", "-L", ca=self.ca)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(FAILED_MSG % mech, r.stderr.decode())

    def test_inline_key_is_sensitive(self):
        st, _, doc = http(self.b.admin_port, "GET", "/v1/cluster/config")
        self.assertEqual(st, 200)
        entry = [e for e in doc["config"] if e["name"] == "ssl.keystore.key"]
        self.assertEqual(entry[0]["value"], None)
        self.assertNotIn("PRIVATE KEY", json.dumps(doc))
        from confluent_kafka.admin import AdminClient, ConfigResource
        a = AdminClient(rdkafka_conf(self.b.port, "SCRAM-SHA-512", *ALICE, ca=self.ca))
        res = ConfigResource(ConfigResource.Type.BROKER, "0")
        entries = a.describe_configs([res])[res].result(30)
        e = entries["ssl.keystore.key"]
        self.assertTrue(e.is_sensitive)
        self.assertIsNone(e.value)
        self.assertNotIn("PRIVATE KEY", repr([(x.name, x.value) for x in entries.values()]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
