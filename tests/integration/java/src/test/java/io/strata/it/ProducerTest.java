/* ProducerTest.java - KafkaProducer against stratad: idempotent produce with every
 * compression codec, record headers, explicit timestamps and keys, read back exactly. */
package io.strata.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.record.TimestampType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

class ProducerTest {
    static final long T0 = 1_700_000_000_000L;

    @ParameterizedTest
    @ValueSource(strings = {"none", "gzip", "snappy", "lz4", "zstd"})
    void idempotentCompressedWithHeadersAndTimestamps(String codec) throws Exception {
        String topic = Strata.unique("jprod-" + codec);
        Strata.createTopic(topic, 3);
        int n = 300;
        Map<String, Object> cfg = new HashMap<>();
        cfg.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        cfg.put(ProducerConfig.ACKS_CONFIG, "all");
        cfg.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        cfg.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        cfg.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 5);
        List<Future<RecordMetadata>> acks = new ArrayList<>();
        try (KafkaProducer<String, String> p = Strata.producer(cfg)) {
            for (int i = 0; i < n; i++) {
                RecordHeaders h = new RecordHeaders();
                h.add("i", Integer.toString(i).getBytes(StandardCharsets.UTF_8));
                h.add("codec", codec.getBytes(StandardCharsets.UTF_8));
                if (i % 7 == 0)
                    h.add("empty", new byte[0]);
                acks.add(p.send(new ProducerRecord<>(topic, i % 3, T0 + i, "k" + i,
                        "value-" + i + "-" + "x".repeat(i % 50), h)));
            }
            p.flush();
            for (int i = 0; i < n; i++) {
                RecordMetadata md = acks.get(i).get(30, TimeUnit.SECONDS);
                assertEquals(i % 3, md.partition());
                assertEquals(i / 3, md.offset(), "offsets of partition " + md.partition() + " are dense");
                assertEquals(T0 + i, md.timestamp());
            }
        }
        List<ConsumerRecord<String, String>> got = Strata.readAll(topic, 3, n);
        Map<Integer, Long> next = new HashMap<>();
        for (ConsumerRecord<String, String> r : got) {
            Header hi = r.headers().lastHeader("i");
            assertNotNull(hi);
            int i = Integer.parseInt(new String(hi.value(), StandardCharsets.UTF_8));
            assertEquals(i % 3, r.partition());
            assertEquals(next.getOrDefault(r.partition(), 0L), r.offset());
            next.put(r.partition(), r.offset() + 1);
            assertEquals("k" + i, r.key());
            assertEquals("value-" + i + "-" + "x".repeat(i % 50), r.value());
            assertEquals(T0 + i, r.timestamp());
            assertEquals(TimestampType.CREATE_TIME, r.timestampType());
            assertArrayEquals(codec.getBytes(StandardCharsets.UTF_8), r.headers().lastHeader("codec").value());
            if (i % 7 == 0)
                assertEquals(0, r.headers().lastHeader("empty").value().length);
            else
                assertEquals(null, r.headers().lastHeader("empty"));
        }
    }

    /** A null key, a null value (tombstone) and an empty value round-trip distinctly. */
    @Test
    void nullKeysAndValues() throws Exception {
        String topic = Strata.unique("jprod-null");
        Strata.createTopic(topic, 1);
        try (KafkaProducer<String, String> p = Strata.producer(Map.of())) {
            p.send(new ProducerRecord<>(topic, 0, null, "v0")).get();
            p.send(new ProducerRecord<>(topic, 0, "k1", null)).get();
            p.send(new ProducerRecord<>(topic, 0, "k2", "")).get();
        }
        List<ConsumerRecord<String, String>> got = Strata.readAll(topic, 1, 3);
        assertEquals(null, got.get(0).key());
        assertEquals("v0", got.get(0).value());
        assertEquals("k1", got.get(1).key());
        assertEquals(null, got.get(1).value());
        assertEquals("", got.get(2).value());
    }

    /** A topic with message.timestamp.type=LogAppendTime stamps records with the broker's time. */
    @Test
    void logAppendTime() throws Exception {
        String topic = Strata.unique("jprod-lat");
        try (var a = Strata.admin()) {
            Strata.createTopic(a, topic, 1, Map.of("message.timestamp.type", "LogAppendTime"));
        }
        long before = System.currentTimeMillis();
        RecordMetadata md;
        try (KafkaProducer<String, String> p = Strata.producer(Map.of())) {
            md = p.send(new ProducerRecord<>(topic, 0, T0, "k", "v")).get();
        }
        assertTrue(md.timestamp() >= before - 60_000, "broker time, not the record's: " + md.timestamp());
        ConsumerRecord<String, String> r = Strata.readAll(topic, 1, 1).get(0);
        assertEquals(TimestampType.LOG_APPEND_TIME, r.timestampType());
        assertEquals(md.timestamp(), r.timestamp());
    }
}
