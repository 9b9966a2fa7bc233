/* StreamsJoinTest.java - a stateful Kafka Streams join against stratad (JoinApp: clicks joined
 * with a KTable of users' regions, its store backed by a changelog), with processing.guarantee
 * at_least_once and exactly_once_v2, run in a JVM of its own:
 *   1. the first 1000 clicks: the output is exact (each click joined once);
 *   2. 2000 more clicks written while the application runs; it is SIGKILLed mid-stream and a
 *      new instance (same application id and state directory) takes over. With
 *      exactly_once_v2 the output, read read_committed, is still exact: the killed instance's
 *      open transaction is aborted, its uncommitted input read again. With at_least_once
 *      every click is joined, some perhaps twice. */
package io.strata.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.streams.StreamsConfig;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class StreamsJoinTest {
    static final int USERS = 20, PARTS = 2;
    static final Pattern RUNNING = Pattern.compile("State transition from REBALANCING to RUNNING");

    static String user(int click) {
        return "u" + (click % USERS);
    }

    static String expected(int click) {
        return JoinApp.joined("c" + click, "r" + (click % USERS) % 5);
    }

    /** Clicks [from, to), in batches of `batch` flushed one by one, `pauseMs` apart (a
     * stream that goes on while the application runs). */
    static void produceClicks(String topic, int from, int to, int batch, long pauseMs) {
        try (KafkaProducer<String, String> p = Strata.producer(Map.of())) {
            for (int i = from; i < to; i++) {
                p.send(new ProducerRecord<>(topic, user(i), "c" + i));
                if ((i - from) % batch == batch - 1) {
                    p.flush();
                    Thread.sleep(pauseMs);
                }
            }
            p.flush();
        } catch (InterruptedException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Reads the output (read_committed) on from where c is until `want` is all there (or a
     * generous bound), into `got`. */
    static void awaitOutput(KafkaConsumer<String, String> c, List<String> got, List<String> want, JavaProc app) {
        HashSet<String> need = new HashSet<>(want);
        HashSet<String> seen = new HashSet<>(got);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (!seen.containsAll(need) && System.nanoTime() < deadline) {
            if (app != null)
                app.assertAlive();
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                got.add(r.value());
                seen.add(r.value());
            }
        }
        need.removeAll(seen);
        assertTrue(need.isEmpty(), need.size() + " joined clicks missing" + (app != null ? "\n" + app.tail() : ""));
    }

    /** Everything the output holds (read_committed), from the beginning to its end. */
    static List<String> readOutput(String out) {
        List<String> got = new ArrayList<>();
        try (KafkaConsumer<String, String> c = Strata.consumer(null,
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
            List<TopicPartition> tps = Strata.partitions(out, PARTS);
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (tps.stream().anyMatch(tp -> c.position(tp) < end.get(tp)) && System.nanoTime() < deadline)
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200)))
                    got.add(r.value());
            for (TopicPartition tp : tps)
                assertEquals(end.get(tp), c.position(tp), "read " + tp + " to its end");
        }
        return got;
    }

    static List<String> expected(int from, int to) {
        List<String> l = new ArrayList<>();
        for (int i = from; i < to; i++)
            l.add(expected(i));
        return l;
    }

    static List<String> sorted(List<String> l) {
        List<String> s = new ArrayList<>(l);
        s.sort(null);
        return s;
    }

    @ParameterizedTest
    @ValueSource(strings = {StreamsConfig.AT_LEAST_ONCE, StreamsConfig.EXACTLY_ONCE_V2})
    void joinSurvivesKill(String guarantee) throws Exception {
        String app = Strata.unique("jjoin");
        String users = app + "-users", clicks = app + "-clicks", out = app + "-out";
        try (Admin a = Strata.admin()) {
            for (String t : List.of(users, clicks, out))
                Strata.createTopic(a, t, PARTS, null); /* co-partitioned by user */
        }
        try (KafkaProducer<String, String> p = Strata.producer(Map.of())) {
            for (int u = 0; u < USERS; u++)
                p.send(new ProducerRecord<>(users, "u" + u, "r" + u % 5));
            p.flush();
        }
        produceClicks(clicks, 0, 1000, 1000, 0);
        Path state = Files.createTempDirectory("strata-join-");
        String[] args = {Strata.bootstrap(), app, guarantee, state.toString(), users, clicks, out};
        List<String> got = new ArrayList<>();
        try (KafkaConsumer<String, String> c = Strata.consumer(null,
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
            c.assign(Strata.partitions(out, PARTS));
            c.seekToBeginning(c.assignment());

            /* 1. the first clicks, each joined once */
            JavaProc a = JavaProc.start(app + "-1", JoinApp.class.getName(), args);
            CompletableFuture<Void> more;
            try {
                awaitOutput(c, got, expected(0, 1000), a);
                assertEquals(sorted(expected(0, 1000)), sorted(readOutput(out)));

                /* 2. more clicks while it runs; killed mid-stream */
                more = CompletableFuture.runAsync(() -> produceClicks(clicks, 1000, 3000, 20, 20));
                awaitOutput(c, got, expected(1000, 1400), a);
            } finally {
                a.stop(true);
            }
            System.out.printf("StreamsJoinTest %s: killed with %d of 3000 joined clicks committed, input %s%n",
                    guarantee, readOutput(out).size(), more.isDone() ? "all written" : "still being written");
            JavaProc b = JavaProc.start(app + "-2", JoinApp.class.getName(), args);
            try {
                b.awaitLog(RUNNING);
                more.get(120, TimeUnit.SECONDS);
                awaitOutput(c, got, expected(0, 3000), b);
            } finally {
                b.stop(false);
            }
        }
        List<String> all = readOutput(out);
        if (guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2))
            assertEquals(sorted(expected(0, 3000)), sorted(all));
        else
            assertEquals(new HashSet<>(expected(0, 3000)), new HashSet<>(all));
        System.out.printf("StreamsJoinTest %s: %d joined clicks for 3000%n", guarantee, all.size());
    }
}
