/* JavaProc.java - a Kafka application in a JVM of its own, started by a test with this test
 * run's class path: a Connect worker (ConnectTest), a Streams application (StreamsJoinTest).
 * Its output goes to a log file under -Dstrata.logs (target/proc-logs) that the test waits on
 * and shows when it fails; it is stopped with SIGTERM (the application's shutdown hook closes
 * it cleanly) or killed with SIGKILL. */
package io.strata.it;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

final class JavaProc {
    final Process proc;
    final Path log;

    private JavaProc(Process proc, Path log) {
        this.proc = proc;
        this.log = log;
    }

    /** Where the processes' logs and files go. */
    static Path logDir() throws IOException {
        Path d = Path.of(System.getProperty("strata.logs", System.getProperty("java.io.tmpdir")));
        Files.createDirectories(d);
        return d;
    }

    /** `java -cp <this class path> mainClass args...`, logging at INFO (the clients at WARN)
     * to logDir()/name.log. */
    static JavaProc start(String name, String mainClass, String... args) throws IOException {
        Path log = logDir().resolve(name + ".log");
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("-Xshare:auto");
        cmd.add("-Xmx256m");
        cmd.add("-XX:TieredStopAtLevel=1"); /* starts sooner; handles little */
        cmd.add("-Dorg.slf4j.simpleLogger.defaultLogLevel=info");
        cmd.add("-Dorg.slf4j.simpleLogger.log.org.apache.kafka.clients=warn");
        cmd.add("-Dorg.slf4j.simpleLogger.log.org.apache.kafka.common=warn");
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(mainClass);
        cmd.addAll(Arrays.asList(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        return new JavaProc(p, log);
    }

    /** The last lines of the log. */
    String tail() {
        try {
            List<String> l = Files.readAllLines(log, StandardCharsets.UTF_8);
            return String.join("\n", l.subList(Math.max(0, l.size() - 60), l.size()));
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    /** Waits until the log matches `p` (a generous bound); returns the match. */
    Matcher awaitLog(Pattern p) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        for (;;) {
            boolean alive = proc.isAlive(); /* before reading: an exit's last lines are read */
            Matcher m = p.matcher(Files.readString(log, StandardCharsets.UTF_8));
            if (m.find())
                return m;
            if (!alive || System.nanoTime() > deadline)
                break;
            Thread.sleep(200);
        }
        proc.destroyForcibly();
        throw new AssertionError("no \"" + p + "\" in the log of " + log.getFileName() + ":\n" + tail());
    }

    void assertAlive() {
        assertTrue(proc.isAlive(), log.getFileName() + " exited:\n" + tail());
    }

    /** SIGTERM or SIGKILL; waits for the exit. */
    void stop(boolean kill) throws Exception {
        if (kill)
            proc.destroyForcibly();
        else
            proc.destroy();
        assertTrue(proc.waitFor(120, TimeUnit.SECONDS), log.getFileName() + " did not exit:\n" + tail());
    }
}
