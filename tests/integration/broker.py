"""Start and stop a real stratad for integration tests (imported by test_*.py).
Each Broker gets its own data directory and free loopback ports."""
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

STRATAD = os.environ.get("STRATAD", "build/tools/stratad")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Proc:
    """A stratad process started with exactly `args` (no defaults added)."""

    def __init__(self, *args, cwd=None, env=None):
        self.proc = subprocess.Popen([STRATAD, *args], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []

    def wait_for(self, pattern, timeout=30):
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            m = rx.search(line)
            if m:
                return m
        raise AssertionError("no line matching %r in:\n%s" % (pattern, "".join(self.lines)))

    def stop(self, sig=signal.SIGTERM):
        if not self.proc:
            return 0, ""
        self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=60)
        self.lines.append(out or "")
        rc = self.proc.returncode
        self.proc = None
        return rc, "".join(self.lines)

    def wait_exit(self, timeout=60):
        """Wait for the process to end by itself (after a signal sent earlier)."""
        out, _ = self.proc.communicate(timeout=timeout)
        self.lines.append(out or "")
        rc = self.proc.returncode
        self.proc = None
        return rc, "".join(self.lines)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc = None


class Broker(Proc):
    """A stratad on its own data directory and free loopback ports.
    `args` are extra flags; `data` a directory to reuse."""

    def __init__(self, *args, data=None, port=None, smp=2, env=None, cwd=None, start=True):
        self.tmp = None
        if data is None:
            self.tmp = tempfile.TemporaryDirectory(prefix="strata-it-")
            data = self.tmp.name
        self.data = data
        self.port = port or free_port()
        self.admin_port = free_port()
        self.args = ["--log-dir", data, "--smp", str(smp),
                     "--listeners", "127.0.0.1:%d" % self.port,
                     "--admin-listener", "127.0.0.1:%d" % self.admin_port, *args]
        self.env = env
        self.cwd = cwd
        self.proc = None
        self.lines = []
        if start:
            self.start()

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.port

    def start(self, timeout=30):
        self.lines = []
        self.proc = subprocess.Popen([STRATAD, *self.args], env=self.env, cwd=self.cwd,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.wait_for("started", timeout)
        return self

    def close(self):
        if self.proc:
            self.stop()
        if self.tmp:
            self.tmp.cleanup()
