/* ToolsTest.java - Kafka's console tools (the kafka-tools jar: kafka-topics,
 * kafka-console-producer/consumer, kafka-consumer-groups, kafka-configs, kafka-get-offsets)
 * run as users script them, each as its own `java -cp ... <main class>` process against
 * stratad, their output checked. */
package io.strata.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;

class ToolsTest {
    record Out(int rc, String out, String err) {
        List<String> lines() {
            List<String> l = new ArrayList<>();
            for (String s : out.split("\n"))
                if (!s.isBlank())
                    l.add(s.strip());
            return l;
        }
    }

    static byte[] readAll(InputStream in) {
        try {
            ByteArrayOutputStream b = new ByteArrayOutputStream();
            in.transferTo(b);
            return b.toByteArray();
        } catch (Exception e) {
            return new byte[0];
        }
    }

    /** Runs a tool's main class in a JVM of its own, `stdin` on its standard input. */
    static Out tool(String mainClass, String stdin, String... args) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add(System.getProperty("java.home") + File.separator + "bin" + File.separator + "java");
        cmd.add("-Xshare:auto");
        cmd.add("-XX:TieredStopAtLevel=1"); /* short-lived: start fast */
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(mainClass);
        cmd.addAll(Arrays.asList(args));
        Process p = new ProcessBuilder(cmd).start();
        CompletableFuture<byte[]> out = CompletableFuture.supplyAsync(() -> readAll(p.getInputStream()));
        CompletableFuture<byte[]> err = CompletableFuture.supplyAsync(() -> readAll(p.getErrorStream()));
        try (OutputStream in = p.getOutputStream()) {
            if (stdin != null)
                in.write(stdin.getBytes(StandardCharsets.UTF_8));
        }
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError(mainClass + " did not finish: " + String.join(" ", args));
        }
        Out o = new Out(p.exitValue(), new String(out.get(), StandardCharsets.UTF_8),
                new String(err.get(), StandardCharsets.UTF_8));
        return o;
    }

    static Out ok(String mainClass, String stdin, String... args) throws Exception {
        Out o = tool(mainClass, stdin, args);
        assertEquals(0, o.rc(), mainClass + " " + String.join(" ", args) + "\nstdout:\n" + o.out()
                + "\nstderr:\n" + o.err());
        return o;
    }

    static final String TOPICS = "org.apache.kafka.tools.TopicCommand";
    static final String PRODUCER = "org.apache.kafka.tools.ConsoleProducer";
    static final String CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer";
    static final String GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
    static final String CONFIGS = "org.apache.kafka.tools.ConfigCommand";
    static final String OFFSETS = "org.apache.kafka.tools.GetOffsetShell";

    @Test
    void topicsProduceConsumeGroupsConfigsOffsets() throws Exception {
        String bs = Strata.bootstrap();
        String t = Strata.unique("jtool");
        String g = Strata.unique("jtool-g");

        /* kafka-topics: create, list, describe, alter */
        ok(TOPICS, null, "--bootstrap-server", bs, "--create", "--topic", t, "--partitions", "2",
                "--replication-factor", "1", "--config", "retention.ms=86400000");
        assertTrue(ok(TOPICS, null, "--bootstrap-server", bs, "--list").lines().contains(t));
        String d = ok(TOPICS, null, "--bootstrap-server", bs, "--describe", "--topic", t).out();
        assertTrue(d.contains("PartitionCount: 2"), d);
        assertTrue(d.contains("retention.ms=86400000"), d);
        assertTrue(d.contains("Partition: 1"), d);
        ok(TOPICS, null, "--bootstrap-server", bs, "--alter", "--topic", t, "--partitions", "3");
        d = ok(TOPICS, null, "--bootstrap-server", bs, "--describe", "--topic", t).out();
        assertTrue(d.contains("PartitionCount: 3"), d);

        /* kafka-console-producer: keyed lines to partition by key */
        StringBuilder in = new StringBuilder();
        for (int i = 0; i < 30; i++)
            in.append("key").append(i).append(':').append("line ").append(i).append('\n');
        ok(PRODUCER, in.toString(), "--bootstrap-server", bs, "--topic", t,
                "--reader-property", "parse.key=true", "--reader-property", "key.separator=:");

        /* kafka-console-consumer in a group: every line once */
        Out c = ok(CONSUMER, null, "--bootstrap-server", bs, "--topic", t, "--group", g,
                "--from-beginning", "--max-messages", "30", "--timeout-ms", "60000",
                "--formatter-property", "print.key=true", "--formatter-property", "key.separator=|");
        Set<String> got = new TreeSet<>(c.lines());
        Set<String> want = new TreeSet<>();
        for (int i = 0; i < 30; i++)
            want.add("key" + i + "|line " + i);
        assertEquals(want, got, c.err());

        /* kafka-consumer-groups: list, describe (lag 0), reset to earliest, describe (lag 30) */
        assertTrue(ok(GROUPS, null, "--bootstrap-server", bs, "--list").lines().contains(g));
        String gd = ok(GROUPS, null, "--bootstrap-server", bs, "--describe", "--group", g).out();
        long lag = lagOf(gd, t);
        assertEquals(0, lag, gd);
        ok(GROUPS, null, "--bootstrap-server", bs, "--reset-offsets", "--group", g, "--topic", t,
                "--to-earliest", "--execute");
        gd = ok(GROUPS, null, "--bootstrap-server", bs, "--describe", "--group", g).out();
        assertEquals(30, lagOf(gd, t), gd);
        String state = ok(GROUPS, null, "--bootstrap-server", bs, "--describe", "--group", g, "--state").out();
        assertTrue(state.contains("Empty"), state);

        /* kafka-configs: alter and describe a topic's configs, describe the broker's */
        ok(CONFIGS, null, "--bootstrap-server", bs, "--entity-type", "topics", "--entity-name", t,
                "--alter", "--add-config", "retention.ms=3600000,segment.bytes=1048576");
        String cd = ok(CONFIGS, null, "--bootstrap-server", bs, "--entity-type", "topics",
                "--entity-name", t, "--describe").out();
        assertTrue(cd.contains("retention.ms=3600000"), cd);
        assertTrue(cd.contains("segment.bytes=1048576"), cd);
        ok(CONFIGS, null, "--bootstrap-server", bs, "--entity-type", "topics", "--entity-name", t,
                "--alter", "--delete-config", "segment.bytes");
        cd = ok(CONFIGS, null, "--bootstrap-server", bs, "--entity-type", "topics",
                "--entity-name", t, "--describe").out();
        assertTrue(!cd.contains("segment.bytes=1048576"), cd);
        String bd = ok(CONFIGS, null, "--bootstrap-server", bs, "--entity-type", "brokers",
                "--entity-name", "0", "--describe", "--all").out();
        assertTrue(bd.contains("num.partitions="), bd);

        /* kafka-get-offsets: latest, earliest and max timestamp per partition */
        List<String> latest = ok(OFFSETS, null, "--bootstrap-server", bs, "--topic", t).lines();
        long total = 0;
        for (String l : latest)
            total += Long.parseLong(l.substring(l.lastIndexOf(':') + 1));
        assertEquals(3, latest.size(), latest.toString());
        assertEquals(30, total, latest.toString());
        for (String l : ok(OFFSETS, null, "--bootstrap-server", bs, "--topic", t, "--time", "-2").lines())
            assertTrue(l.endsWith(":0"), l);
        List<String> max = ok(OFFSETS, null, "--bootstrap-server", bs, "--topic", t, "--time", "max-timestamp").lines();
        assertEquals(3, max.size(), max.toString());

        /* kafka-consumer-groups --delete, kafka-topics --delete */
        ok(GROUPS, null, "--bootstrap-server", bs, "--delete", "--group", g);
        assertTrue(!ok(GROUPS, null, "--bootstrap-server", bs, "--list").lines().contains(g));
        ok(TOPICS, null, "--bootstrap-server", bs, "--delete", "--topic", t);
        assertTrue(!ok(TOPICS, null, "--bootstrap-server", bs, "--list").lines().contains(t));
    }

    /** The sum of the LAG column over `topic`'s rows of `kafka-consumer-groups --describe`. */
    static long lagOf(String describe, String topic) {
        long lag = 0;
        int rows = 0;
        for (String line : describe.split("\n")) {
            String[] f = line.trim().split("\\s+");
            if (f.length >= 6 && f[1].equals(topic)) {
                lag += Long.parseLong(f[5]);
                rows++;
            }
        }
        assertTrue(rows > 0, describe);
        return lag;
    }
}
