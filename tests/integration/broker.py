"""Start and stop a real stratad for integration tests (imported by test_*.py).
Each Broker gets its own data directory and free loopback ports."""
import os
import queue
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

STRATAD = os.environ.get("STRATAD", "build/tools/stratad")


# Lines an ASan/UBSan/LSan build of stratad prints when it finds an error.
SANITIZER_LINES = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def check_exit(rc, out):
    """Fails unless stratad exited 0 with no sanitizer report in its output."""
    bad = [ln for ln in out.splitlines() if any(s in ln for s in SANITIZER_LINES)]
    assert rc == 0 and not bad, "stratad exit %s%s:\n%s" % (
        rc, ", sanitizer report" if bad else "", out[-6000:])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def reserved_port():
    """A free port below the kernel's ephemeral range, for a server a test
    stops and starts again on the same port: while it is down, no port 0
    bind (free_port of a parallel test, an outgoing connection) can take it."""
    import random
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(1000):
        port = rng.randrange(max(1024, low - 12000), low)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no free port below %d" % low)


class Proc:
    """A stratad process started with exactly `args` (no defaults added).
    A reader thread collects its output lines, so waiting for a line never
    blocks past its timeout."""

    def __init__(self, *args, cwd=None, env=None):
        self.lines = []
        self._spawn([STRATAD, *args], cwd, env)

    def _spawn(self, argv, cwd, env):
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self._queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout, self._queue),
                                        daemon=True)
        self._reader.start()

    @staticmethod
    def _read(stream, q):
        for line in stream:
            q.put(line)
        q.put(None)  # end of output
        stream.close()

    def _drain(self):
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return
            if line is not None:
                self.lines.append(line)

    def wait_for(self, pattern, timeout=30, seen=False):
        """Wait for a log line matching pattern (with seen=True, lines already
        read count too). The timeout is only an upper bound."""
        rx = re.compile(pattern)
        if seen:
            for line in self.lines:
                m = rx.search(line)
                if m:
                    return m
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)
                break
            self.lines.append(line)
            m = rx.search(line)
            if m:
                return m
        raise AssertionError("no line matching %r in:\n%s" % (pattern, "".join(self.lines)))

    def _finish(self, timeout=60):
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout)
        self._drain()
        rc = self.proc.returncode
        self.proc = None
        return rc, "".join(self.lines)

    def stop(self, sig=signal.SIGTERM):
        if not self.proc:
            return 0, ""
        self.proc.send_signal(sig)
        return self._finish()

    def wait_exit(self, timeout=60):
        """Wait for the process to end by itself (after a signal sent earlier)."""
        return self._finish(timeout)

    def kill9(self):
        self.proc.kill()
        self._finish()


class Broker(Proc):
    """A stratad on its own data directory and free loopback ports.
    `args` are extra flags; `data` a directory to reuse."""

    def __init__(self, *args, data=None, port=None, smp=2, env=None, cwd=None, start=True,
                 wrap=()):
        self.tmp = None
        self.wrap = list(wrap)  # a command that execs stratad: ["prlimit", "--nofile=512"]
        if data is None:
            self.tmp = tempfile.TemporaryDirectory(prefix="strata-it-")
            data = self.tmp.name
        self.data = data
        self.port = port or reserved_port()  # restarts reuse it
        self.admin_port = reserved_port()
        while self.admin_port == self.port:
            self.admin_port = reserved_port()
        # Ports are picked by each test process on its own, so a parallel test can pick the
        # same one: stratad then refuses to start ("already in use"). The first start of a
        # broker whose ports were picked here takes new ones (restarts keep theirs).
        self.pick_ports = port is None
        self.extra = list(args)
        self.smp = smp
        self._set_args()
        self.env = env
        self.cwd = cwd
        self.proc = None
        self.lines = []
        if start:
            self.start()

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.port

    def _set_args(self):
        self.args = ["--log-dir", self.data, "--smp", str(self.smp),
                     "--listeners", "127.0.0.1:%d" % self.port,
                     "--admin-listener", "127.0.0.1:%d" % self.admin_port, *self.extra]

    def start(self, timeout=30):
        for attempt in range(5):
            self.lines = []
            self._spawn([*self.wrap, STRATAD, *self.args], self.cwd, self.env)
            try:
                self.wait_for("started", timeout)
            except AssertionError:
                taken = any("already in use" in ln for ln in self.lines)
                if not (self.pick_ports and taken and attempt < 4):
                    raise
                self.proc.wait(30)
                self.port, self.admin_port = reserved_port(), reserved_port()
                while self.admin_port == self.port:
                    self.admin_port = reserved_port()
                self._set_args()
                continue
            self.pick_ports = False  # restarts reuse the ports it started on
            return self

    def stop_clean(self):
        """SIGTERM; fails unless it exits 0 with no sanitizer report. Returns the output."""
        rc, out = self.stop()
        check_exit(rc, out)
        return out

    def close(self):
        """Stops a running broker (failing like stop_clean() on a bad exit: a crash or
        a sanitizer report at the final stop must not go unseen) and removes its data."""
        try:
            if self.proc:
                self.stop_clean()
        finally:
            if self.tmp:
                self.tmp.cleanup()
