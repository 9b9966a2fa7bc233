/* StreamsTest.java - a Kafka Streams word count against stratad, with processing.guarantee
 * at_least_once and exactly_once_v2 (transactional output, read read_committed): the
 * repartition and changelog topics Streams creates, repartition purging with DeleteRecords,
 * and a restart with an empty state directory that restores the counts from the changelog;
 * the output is exact. The changelog is a compacted topic (Streams' default) with small
 * segments and a low dirty ratio, and test_java.py runs the broker with a short cleaner
 * backoff: the cleaner may compact it while the application runs and before the restore
 * (how much it removes by then is not asserted: its timing is the cleaner's). */
package io.strata.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.config.TopicConfig;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.common.utils.Bytes;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class StreamsTest {
    static final String[] WORDS = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"};

    static KafkaStreams start(String app, String in, String out, Path state, String guarantee) {
        StreamsBuilder b = new StreamsBuilder();
        b.<String, String>stream(in)
                .flatMapValues(v -> Arrays.asList(v.split(" ")))
                .groupBy((k, w) -> w) /* -> the repartition topic */
                .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts")
                        .withLoggingEnabled(Map.of(TopicConfig.SEGMENT_BYTES_CONFIG, "2048",
                                TopicConfig.MIN_CLEANABLE_DIRTY_RATIO_CONFIG, "0.01"))) /* -> the changelog */
                .toStream()
                .to(out, Produced.with(Serdes.String(), Serdes.Long()));
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, Strata.bootstrap());
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.STATE_DIR_CONFIG, state.toString());
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
        p.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, 200);
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        KafkaStreams s = new KafkaStreams(b.build(), p);
        s.start();
        return s;
    }

    /** Produces lines [from, to) of the input; line i holds words i % 7 .. i % 7 + i % 3. */
    static void produce(String in, int from, int to, Map<String, Long> want) throws Exception {
        try (KafkaProducer<String, String> p = Strata.producer(Map.of())) {
            for (int i = from; i < to; i++) {
                StringBuilder line = new StringBuilder();
                for (int w = 0; w <= i % 3; w++) {
                    String word = WORDS[(i + w) % WORDS.length];
                    line.append(w == 0 ? "" : " ").append(word);
                    want.merge(word, 1L, Long::sum);
                }
                p.send(new ProducerRecord<>(in, "line" + i, line.toString()));
            }
            p.flush();
        }
    }

    /** Reads the output until the latest count of every word is `want`'s. */
    static void awaitCounts(KafkaConsumer<String, Long> c, Map<String, Long> want) {
        Map<String, Long> latest = new HashMap<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (!latest.equals(want) && System.nanoTime() < deadline)
            for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(200)))
                latest.put(r.key(), r.value());
        assertEquals(want, latest);
    }

    static void rmrf(Path p) throws IOException {
        if (!Files.exists(p))
            return;
        try (Stream<Path> w = Files.walk(p)) {
            for (Path x : w.sorted(Comparator.reverseOrder()).collect(Collectors.toList()))
                Files.delete(x);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {StreamsConfig.AT_LEAST_ONCE, StreamsConfig.EXACTLY_ONCE_V2})
    void wordCountRestartedRestoresFromChangelog(String guarantee) throws Exception {
        String app = Strata.unique("jwc");
        String in = app + "-in", out = app + "-out";
        try (Admin a = Strata.admin()) {
            Strata.createTopic(a, in, 2, null);
            Strata.createTopic(a, out, 2, null);
        }
        Path state = Files.createTempDirectory("strata-streams-");
        Map<String, Long> want = new HashMap<>();
        Properties cp = Strata.consumerProps(null);
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class.getName());
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"); /* exactly_once_v2 writes in transactions */
        try (KafkaConsumer<String, Long> c = new KafkaConsumer<>(cp)) {
            c.assign(Strata.partitions(out, 2));
            c.seekToBeginning(c.assignment());

            produce(in, 0, 200, want);
            KafkaStreams s = start(app, in, out, state, guarantee);
            try {
                awaitCounts(c, want);
            } finally {
                /* leave the group: the next instance need not wait out this one's session */
                s.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                        .withTimeout(Duration.ofSeconds(60)));
            }
            /* the state is gone: the next instance rebuilds the counts from the changelog */
            s.cleanUp();
            rmrf(state);
            produce(in, 200, 350, want);
            s = start(app, in, out, state, guarantee);
            try {
                awaitCounts(c, want);
            } finally {
                s.close(Duration.ofSeconds(60));
            }
        } finally {
            rmrf(state);
        }
        try (Admin a = Strata.admin()) {
            String changelog = app + "-counts-changelog";
            Set<String> topics = a.listTopics().names().get(30, TimeUnit.SECONDS);
            List<String> repart = topics.stream().filter(t -> t.startsWith(app) && t.endsWith("-repartition"))
                    .collect(Collectors.toList());
            assertTrue(topics.contains(changelog), topics.toString());
            assertEquals(1, repart.size(), topics.toString());
            ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, changelog);
            Config cfg = a.describeConfigs(List.of(r)).all().get(30, TimeUnit.SECONDS).get(r);
            assertEquals("compact", cfg.get("cleanup.policy").value());
            /* Streams purges what it consumed of its repartition topic (DeleteRecords) */
            Map<TopicPartition, OffsetSpec> q = new HashMap<>();
            for (TopicPartition tp : Strata.partitions(repart.get(0), 2))
                q.put(tp, OffsetSpec.earliest());
            long purged = 0;
            for (var e : a.listOffsets(q).all().get(30, TimeUnit.SECONDS).values())
                purged += e.offset();
            assertTrue(purged > 0, "the repartition topic was never purged");
        }
    }
}
