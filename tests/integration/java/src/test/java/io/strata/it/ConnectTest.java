/* ConnectTest.java - Kafka Connect in distributed mode against stratad: a real worker process
 * (org.apache.kafka.connect.cli.ConnectDistributed, the class connect-distributed.sh runs)
 * creates its config, offset and status topics (compacted; it checks their cleanup.policy with
 * DescribeConfigs) and runs a FileStreamSource -> topic -> FileStreamSink pipeline, configured
 * over its REST API. The output file must equal the input line for line:
 *   1. first run: every line copied;
 *   2. a graceful restart (SIGTERM: the worker commits its offsets and leaves): lines appended
 *      meanwhile are copied, none twice (the source resumes from its file position in the
 *      offset topic, the sink from its group's committed offset);
 *   3. a SIGKILL mid-stream and a new worker: no line lost; Connect is at-least-once, so lines
 *      after the last committed offsets may be copied twice, in order. With
 *      exactly.once.source.support=enabled the source writes records and its offsets in one
 *      transaction: the topic, read read_committed, holds every line exactly once.
 * And a worker refuses an offset topic that is not compacted (cleanup.policy from
 * DescribeConfigs).
 * Worker logs and configs: target/proc-logs/. */
package io.strata.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.config.ConfigResource;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class ConnectTest {
    static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    static final Pattern REST_URL = Pattern.compile("REST server listening at (http://[^/ ]+/)");

    /** A worker process and where its REST API listens. */
    static final class Worker {
        final JavaProc proc;
        final String url;

        Worker(JavaProc proc, String url) {
            this.proc = proc;
            this.url = url;
        }
    }

    /** Starts `connect-distributed worker.properties` and waits for its REST server. */
    static Worker start(Properties props, String name) throws Exception {
        JavaProc p = launch(props, name);
        return new Worker(p, p.awaitLog(REST_URL).group(1));
    }

    /** `connect-distributed NAME.properties` with props in that file. */
    static JavaProc launch(Properties props, String name) throws Exception {
        Path cfg = JavaProc.logDir().resolve(name + ".properties");
        try (var w = Files.newBufferedWriter(cfg, StandardCharsets.UTF_8)) {
            props.store(w, "ConnectTest worker");
        }
        return JavaProc.start(name, "org.apache.kafka.connect.cli.ConnectDistributed", cfg.toString());
    }

    static void stop(Worker w, boolean kill) throws Exception {
        w.proc.stop(kill);
    }

    static HttpResponse<String> http(String method, String url, String json) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(60))
                .header("Content-Type", "application/json");
        b.method(method, json == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(json));
        return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    static String json(Map<String, String> m) {
        StringBuilder s = new StringBuilder("{");
        for (var e : m.entrySet())
            s.append(s.length() > 1 ? "," : "").append('"').append(e.getKey()).append("\":\"")
                    .append(e.getValue().replace("\\", "\\\\").replace("\"", "\\\"")).append('"');
        return s.append('}').toString();
    }

    /** PUT /connectors/NAME/config until the worker accepts it (it answers 409 while the
     * group rebalances or before it has read the config topic). */
    static void putConnector(Worker w, String name, Map<String, String> config) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        HttpResponse<String> r;
        do {
            r = http("PUT", w.url + "connectors/" + name + "/config", json(config));
            if (r.statusCode() / 100 == 2)
                return;
            Thread.sleep(500);
        } while (System.nanoTime() < deadline);
        throw new AssertionError("PUT connector " + name + ": " + r.statusCode() + " " + r.body() + "\n" + w.proc.tail());
    }

    static List<String> lines(int from, int to) {
        List<String> l = new ArrayList<>();
        for (int i = from; i < to; i++)
            l.add("line " + i + " " + "x".repeat(i % 17));
        return l;
    }

    static void append(Path file, List<String> l) throws IOException {
        Files.write(file, l, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    }

    static List<String> readLines(Path file) throws IOException {
        if (!Files.exists(file))
            return List.of();
        String s = Files.readString(file, StandardCharsets.UTF_8);
        int end = s.lastIndexOf('\n'); /* a line being written is not whole yet */
        if (end < 0)
            return List.of();
        return List.of(s.substring(0, end).split("\n", -1));
    }

    /** Waits until the sink's file holds the first `n` lines of `want` (each once or more). */
    static List<String> awaitOutput(Worker w, Path out, List<String> want, int n) throws Exception {
        java.util.Set<String> need = new java.util.HashSet<>(want.subList(0, n));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        List<String> got = readLines(out);
        while (!new java.util.HashSet<>(got).containsAll(need) && System.nanoTime() < deadline) {
            w.proc.assertAlive();
            Thread.sleep(200);
            got = new ArrayList<>(readLines(out));
        }
        assertTrue(new java.util.HashSet<>(got).containsAll(need),
                "the sink wrote " + got.size() + " lines, want " + n + " of the input\n" + w.proc.tail());
        return got;
    }

    /** Every record of the topic's one partition (read_committed: what committed
     * transactions wrote), in offset order. */
    static List<String> topicValues(String topic) {
        List<String> out = new ArrayList<>();
        try (KafkaConsumer<String, String> c = Strata.consumer(null,
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
            var tp = Strata.partitions(topic, 1);
            c.assign(tp);
            c.seekToBeginning(tp);
            long end = c.endOffsets(tp).get(tp.get(0));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (c.position(tp.get(0)) < end && System.nanoTime() < deadline)
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200)))
                    out.add(r.value());
            assertEquals(end, c.position(tp.get(0)), "read " + topic + " to its end");
        }
        return out;
    }

    /** At least once, in order: got is `want` where a stretch may be repeated from an earlier
     * line (what followed the last committed offsets before a kill). At most `torn` lines of
     * got are no line of want: a line the killed sink had half written, then the next one. */
    static void assertAtLeastOnceInOrder(List<String> want, List<String> got, int torn) {
        Map<String, Integer> index = new java.util.HashMap<>();
        for (int i = 0; i < want.size(); i++)
            index.put(want.get(i), i);
        int next = 0, foreign = 0;
        for (String l : got) {
            Integer i = index.get(l);
            if (i == null) {
                foreign++;
                assertTrue(foreign <= torn && want.stream().anyMatch(l::endsWith), "not a line of the input: " + l);
                continue;
            }
            assertTrue(i <= next, "line " + l + " before line " + (next < want.size() ? want.get(next) : "(end)"));
            if (i == next)
                next++;
        }
        assertEquals(want.size(), next, "lines copied");
    }

    /** A distributed worker of group `id` (its topics named after it) on this broker. */
    static Properties workerProps(String id, String exactlyOnce) {
        Properties wp = new Properties();
        wp.put("bootstrap.servers", Strata.bootstrap());
        wp.put("group.id", id);
        wp.put("config.storage.topic", id + "-configs");
        wp.put("offset.storage.topic", id + "-offsets");
        wp.put("status.storage.topic", id + "-status");
        wp.put("config.storage.replication.factor", "1");
        wp.put("offset.storage.replication.factor", "1");
        wp.put("status.storage.replication.factor", "1");
        wp.put("offset.storage.partitions", "3");
        wp.put("status.storage.partitions", "2");
        wp.put("key.converter", "org.apache.kafka.connect.storage.StringConverter");
        wp.put("value.converter", "org.apache.kafka.connect.storage.StringConverter");
        wp.put("offset.flush.interval.ms", "500");
        wp.put("listeners", "http://127.0.0.1:0");
        wp.put("plugin.discovery", "service_load"); /* the connectors are on the class path */
        /* a killed worker's tasks and its sink consumer's partitions are taken over once their
         * sessions expire (the broker's group.min.session.timeout.ms is 6 s) */
        wp.put("scheduled.rebalance.max.delay.ms", "0");
        wp.put("session.timeout.ms", "6000");
        wp.put("heartbeat.interval.ms", "1000");
        wp.put("consumer.session.timeout.ms", "6000");
        wp.put("consumer.heartbeat.interval.ms", "1000");
        wp.put("exactly.once.source.support", exactlyOnce);
        return wp;
    }

    @ParameterizedTest
    @ValueSource(strings = {"disabled", "enabled"})
    void fileStreamPipelineSurvivesRestartAndKill(String exactlyOnce) throws Exception {
        String id = Strata.unique("jconnect");
        String topic = id + "-lines";
        Path dir = Files.createTempDirectory("strata-connect-");
        Path in = dir.resolve("in.txt"), out = dir.resolve("out.txt");
        Properties wp = workerProps(id, exactlyOnce);
        try (Admin a = Strata.admin()) {
            Strata.createTopic(a, topic, 1, null); /* one partition: the file's order */
        }
        Map<String, String> source = Map.of("connector.class", FileConnectors.Source.class.getName(), "tasks.max", "1",
                "file", in.toString(), "topic", topic);
        Map<String, String> sink = Map.of("connector.class", FileConnectors.Sink.class.getName(), "tasks.max", "1",
                "file", out.toString(), "topics", topic);
        List<String> want = new ArrayList<>(lines(0, 300));
        append(in, want);

        /* 1. the first worker copies the file */
        Worker w = start(wp, id + "-1");
        try {
            putConnector(w, "src", source);
            putConnector(w, "sink", sink);
            assertEquals(want, awaitOutput(w, out, want, want.size()));
        } finally {
            stop(w, false);
        }
        /* the worker's internal topics are compacted, as it asked */
        try (Admin a = Strata.admin()) {
            for (String t : List.of("-configs", "-offsets", "-status")) {
                ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, id + t);
                Config c = a.describeConfigs(List.of(r)).all().get(30, TimeUnit.SECONDS).get(r);
                assertEquals("compact", c.get("cleanup.policy").value(), id + t);
            }
        }

        /* 2. lines written while no worker runs; a new worker resumes from the committed
         * offsets: nothing twice */
        List<String> more = lines(300, 600);
        append(in, more);
        want.addAll(more);
        w = start(wp, id + "-2");
        try {
            assertEquals(want, awaitOutput(w, out, want, want.size()));

            /* 3. killed while copying */
            more = lines(600, 2600);
            append(in, more);
            want.addAll(more);
            awaitOutput(w, out, want, 700);
        } finally {
            stop(w, true);
        }
        more = lines(2600, 3000);
        append(in, more);
        want.addAll(more);
        w = start(wp, id + "-3");
        try {
            awaitOutput(w, out, want, want.size());
        } finally {
            stop(w, false);
        }
        /* the topic: at least once; exactly once with exactly.once.source.support */
        List<String> records = topicValues(topic);
        if (exactlyOnce.equals("enabled"))
            assertEquals(want, records);
        else
            assertAtLeastOnceInOrder(want, records, 0);
        /* the file: the killed sink may have left half a line (its writer is buffered) */
        assertAtLeastOnceInOrder(want, readLines(out), 1);
    }

    /** Connect refuses an internal topic that could lose its data: Strata's DescribeConfigs
     * reports the offset topic's cleanup.policy=delete and the worker does not start. */
    @org.junit.jupiter.api.Test
    void workerRefusesAnOffsetTopicThatIsNotCompacted() throws Exception {
        String id = Strata.unique("jconnect-del");
        try (Admin a = Strata.admin()) {
            Strata.createTopic(a, id + "-offsets", 1, Map.of("cleanup.policy", "delete"));
        }
        JavaProc p = launch(workerProps(id, "disabled"), id);
        try {
            p.awaitLog(Pattern.compile("Topic '" + id + "-offsets' supplied via the 'offset.storage.topic' property is "
                    + "required to have 'cleanup.policy=compact'"));
        } finally {
            p.stop(true); /* its herder thread is gone: a clean stop waits out Connect's timeouts */
        }
    }
}
