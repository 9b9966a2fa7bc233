#!/usr/bin/python3
"""The Java Kafka ecosystem against a real stratad: runs the JUnit 5 tests of
tests/integration/java (Java client, console tools, Kafka Streams, Kafka Connect) with Maven.

Three steps, each failing with its own message:
  1. resolve: Maven fetches the pinned dependencies into ~/.m2 (offline first; online only
     when something is missing) and compiles the tests;
  2. lock: what Maven resolved must be exactly tests/integration/java/deps.lock (coordinates
     and SHA-256 of every jar); `test_java.py --update-lock` rewrites it after a pom change;
  3. test: a stratad on free loopback ports, then `mvn -o test -Dstrata.bootstrap=...`.
Environment: STRATAD (the broker), JAVA_TARGET (Maven's build directory), MVN (default mvn),
JAVA_TEST (a Surefire -Dtest filter, e.g. AdminTest)."""
import hashlib
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from broker import Broker  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.join(HERE, "java")
LOCK = os.path.join(PROJECT, "deps.lock")
MVN = os.environ.get("MVN", "mvn")
TARGET = os.environ.get("JAVA_TARGET", os.path.join(PROJECT, "target"))
BASE = [MVN, "-B", "-f", os.path.join(PROJECT, "pom.xml"), "-Dstrata.target=" + TARGET]


def run(args, offline=True):
    cmd = BASE + (["-o"] if offline else []) + args
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def fail(msg, out=""):
    if out:
        sys.stdout.write(out[-20000:])
    print("test_java: ERROR: " + msg, flush=True)
    sys.exit(1)


LISTING = os.path.join(TARGET, "deps.txt")


def resolve():
    """Dependencies, plugins and Surefire's JUnit provider in ~/.m2, the tests compiled, and
    what was resolved listed in LISTING (one Maven run: each costs a JVM start)."""
    # The plugin by its full name: offline, a fresh ~/.m2 cannot map the prefix "dependency:".
    dry = ["-q", "org.apache.maven.plugins:maven-dependency-plugin:list", "-DincludeScope=test",
           "-DoutputAbsoluteArtifactFilename=true", "-DoutputFile=" + LISTING,
           "test", "-Dtest=NoSuchTest", "-Dsurefire.failIfNoSpecifiedTests=false"]
    rc, out = run(dry)
    if rc == 0:
        return
    print("test_java: offline build failed; fetching the pinned Maven dependencies into ~/.m2",
          flush=True)
    rc, out = run(dry, offline=False)
    if rc != 0:
        offline = "Could not transfer" in out or "Unknown host" in out or "resolve" in out
        fail("Maven could not resolve the Java test dependencies: Maven Central is unreachable and "
             "~/.m2 does not hold them (run this test once with network access)" if offline else
             "the Java tests do not build (mvn test-compile)", out)


def resolved():
    """Sorted 'group:artifact:type:version:scope sha256' of every jar resolve() listed."""
    rows = []
    with open(LISTING) as f:
        for line in f:
            line = line.strip()
            if line.count(":") < 5 or line.startswith("The following"):
                continue
            line = line.split(" -- ")[0]
            # group:artifact:type[:classifier]:version:scope:/abs/path.jar
            coord, path = line.rsplit(":", 1)
            with open(path, "rb") as j:
                digest = hashlib.sha256(j.read()).hexdigest()
            rows.append("%s %s" % (coord, digest))
    return sorted(rows)


def check_lock(update):
    rows = resolved()
    text = "".join(r + "\n" for r in rows)
    if update:
        with open(LOCK, "w") as f:
            f.write(text)
        print("test_java: wrote %s (%d artifacts)" % (LOCK, len(rows)))
        return
    with open(LOCK) as f:
        want = f.read()
    if want != text:
        import difflib
        diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True),
                                            "deps.lock", "resolved"))
        fail("the resolved Java dependencies differ from deps.lock (a pom change needs "
             "`test_java.py --update-lock`):\n" + diff)


def main():
    for tool in (MVN, "java"):
        if not shutil.which(tool):
            fail("%s is not installed (scripts/deps.sh test installs openjdk-17-jdk-headless and maven)"
                 % tool)
    t = time.monotonic()
    resolve()
    check_lock("--update-lock" in sys.argv)
    print("test_java: resolve + compile + lock check %.0f s" % (time.monotonic() - t), flush=True)
    # a short cleaner backoff: StreamsTest waits for its compacted changelog to be cleaned
    # KIP-848 (ConsumerProtocolTest): a crashed member expires after 6 s; members heartbeat twice a second
    b = Broker("-X", "group.initial.rebalance.delay.ms=0", "-X", "log.cleaner.backoff.ms=200",
               "-X", "group.consumer.session.timeout.ms=6000",
               "-X", "group.consumer.heartbeat.interval.ms=500")
    try:
        args = ["test", "-Dstrata.bootstrap=" + b.bootstrap,
                "-Dstrata.stratad=" + os.path.abspath(os.environ.get("STRATAD", "build/tools/stratad"))]
        if os.environ.get("JAVA_TEST"):
            args.append("-Dtest=" + os.environ["JAVA_TEST"])
        t = time.monotonic()
        rc, out = run(args)
        sys.stdout.write(out)
        print("test_java: mvn test %.0f s" % (time.monotonic() - t), flush=True)
    finally:
        brc, log = b.stop()
        b.close()
    if brc != 0:
        fail("stratad exited %d:\n%s" % (brc, log))
    if rc != 0:
        fail("JUnit tests failed (broker log follows)", log)


if __name__ == "__main__":
    main()
