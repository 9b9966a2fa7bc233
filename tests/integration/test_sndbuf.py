#!/usr/bin/python3
"""socket.send.buffer.bytes against a real stratad: every accepted Kafka
connection gets SO_SNDBUF set to it (Linux doubles the value, so the kernel's
send buffer of the broker's end of the connection, `tb` in `ss -tm`, is twice
it: Kafka's default 102400 gives 204800), and -1 (Strata's default) keeps the
OS's auto-tuned buffer (up to net.ipv4.tcp_wmem's maximum, not a set size). Read back from the kernel with ss(8) (iproute2): the broker's
side of the connection is the one whose source port is the listener's.
Why it matters (bench/REPORT.md, "Multi-partition Fetch send path"): with the
auto-tuned 4 MiB buffer each file range of a Fetch went out in one sendfile
of up to 4 MiB: faster on an idle machine, slower than Kafka's bound on a
loaded one."""
import os
import re
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker  # noqa: E402
import kwire  # noqa: E402


def broker_sndbuf(port, client_port):
    """tb (bytes) of the broker's end of the connection from client_port."""
    out = subprocess.run(["ss", "-tmnH", "state", "established",
                          "( sport = :%d and dport = :%d )" % (port, client_port)],
                         check=True, capture_output=True, text=True).stdout
    found = re.findall(r"\btb(\d+)\b", out)
    assert len(found) == 1, out
    return int(found[0])


def connected_sndbuf(b):
    with socket.create_connection(("127.0.0.1", b.port), timeout=30) as s:
        s.sendall(kwire.frame(18, 0, 7))  # ApiVersions v0: the connection is accepted and served
        resp = kwire.recv_frame(s)
        assert resp, resp
        return broker_sndbuf(b.port, s.getsockname()[1])


def wmem_max():
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        return int(f.read().split()[2])


class SndbufTest(unittest.TestCase):
    def test_kafkas_default_and_another_value(self):
        for bytes_ in (102400, 300000):
            b = Broker("-X", "socket.send.buffer.bytes=%d" % bytes_)
            try:
                self.assertEqual(connected_sndbuf(b), 2 * bytes_)
            finally:
                b.close()

    def test_os_default(self):
        for args in ((), ("-X", "socket.send.buffer.bytes=-1")):
            b = Broker(*args)
            try:
                tb = connected_sndbuf(b)
                self.assertNotIn(tb, (2 * 102400, 2 * 300000))
                self.assertLessEqual(tb, wmem_max())
            finally:
                b.close()


if __name__ == "__main__":
    unittest.main()
