/* TxnTest.java - the Java transactional producer against stratad: commit and abort,
 * read_committed against read_uncommitted consumers, offsets committed inside a transaction
 * (sendOffsetsToTransaction), and fencing of a zombie by a new producer with the same
 * transactional.id. */
package io.strata.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.junit.jupiter.api.Test;

class TxnTest {
    static List<String> values(String topic, String isolation, int atLeast) {
        List<String> out = new ArrayList<>();
        try (KafkaConsumer<String, String> c = Strata.consumer(null,
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation))) {
            TopicPartition tp = new TopicPartition(topic, 0);
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long end = c.endOffsets(List.of(tp)).get(tp);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while ((out.size() < atLeast || c.position(tp) < end) && System.nanoTime() < deadline)
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200)))
                    out.add(r.value());
        }
        return out;
    }

    @Test
    void commitAbortOffsetsAndFencing() throws Exception {
        String topic = Strata.unique("jtxn");
        String group = Strata.unique("jtxn-g");
        String txnId = Strata.unique("jtxn-id");
        Strata.createTopic(topic, 1);
        Map<String, Object> cfg = Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId,
                ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 30000);
        TopicPartition tp = new TopicPartition(topic, 0);
        List<String> committed = new ArrayList<>();
        try (KafkaProducer<String, String> p = Strata.producer(cfg)) {
            p.initTransactions();
            p.beginTransaction();
            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k", "c1-" + i));
                committed.add("c1-" + i);
            }
            p.commitTransaction();
            p.beginTransaction();
            for (int i = 0; i < 5; i++)
                p.send(new ProducerRecord<>(topic, 0, "k", "a-" + i));
            p.flush();
            p.abortTransaction();
            p.beginTransaction();
            for (int i = 0; i < 3; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k", "c2-" + i));
                committed.add("c2-" + i);
            }
            p.sendOffsetsToTransaction(Map.of(tp, new OffsetAndMetadata(7)), new ConsumerGroupMetadata(group));
            p.commitTransaction();

            /* a new producer with the same id fences this one */
            try (KafkaProducer<String, String> p2 = Strata.producer(cfg)) {
                p2.initTransactions();
                assertThrows(ProducerFencedException.class, () -> {
                    p.beginTransaction();
                    try {
                        p.send(new ProducerRecord<>(topic, 0, "k", "zombie")).get(30, TimeUnit.SECONDS);
                    } catch (ExecutionException e) {
                        throw e.getCause(); /* the broker fenced the zombie's produce */
                    }
                    p.commitTransaction();
                });
                p2.beginTransaction();
                p2.send(new ProducerRecord<>(topic, 0, "k", "c3"));
                committed.add("c3");
                p2.commitTransaction();
            } catch (ProducerFencedException e) {
                throw new AssertionError("the new producer was fenced", e);
            }
        } catch (ProducerFencedException e) {
            /* closing the fenced producer may report it again */
        }
        assertEquals(committed, values(topic, "read_committed", committed.size()));
        List<String> all = values(topic, "read_uncommitted", committed.size() + 5);
        assertEquals(committed.size() + 5, all.size(), all.toString());
        try (Admin a = Strata.admin()) {
            Map<TopicPartition, OffsetAndMetadata> off = a.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
            assertEquals(7L, off.get(tp).offset());
        }
    }

    /** While a transaction is open, ListOffsets LATEST with read_committed answers the last
     * stable offset (its first record), read_uncommitted the high watermark; a read_committed
     * consumer's endOffsets and lag agree. */
    @Test
    void lastStableOffset() throws Exception {
        String topic = Strata.unique("jtxn-lso");
        Strata.createTopic(topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<String, String> plain = Strata.producer(Map.of())) {
            for (int i = 0; i < 4; i++)
                plain.send(new ProducerRecord<>(topic, 0, "k", "p" + i));
            plain.flush();
        }
        try (KafkaProducer<String, String> p = Strata.producer(Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG,
                Strata.unique("jtxn-lso-id")));
             Admin a = Strata.admin()) {
            p.initTransactions();
            p.beginTransaction();
            for (int i = 0; i < 3; i++)
                p.send(new ProducerRecord<>(topic, 0, "k", "t" + i));
            p.flush();
            long committed = a.listOffsets(Map.of(tp, OffsetSpec.latest()),
                    new ListOffsetsOptions(IsolationLevel.READ_COMMITTED)).all().get(30, TimeUnit.SECONDS).get(tp).offset();
            long uncommitted = a.listOffsets(Map.of(tp, OffsetSpec.latest()),
                    new ListOffsetsOptions(IsolationLevel.READ_UNCOMMITTED)).all().get(30, TimeUnit.SECONDS).get(tp).offset();
            assertEquals(4L, committed, "LSO: the open transaction's first offset");
            assertEquals(7L, uncommitted, "high watermark");
            try (KafkaConsumer<String, String> c = Strata.consumer(null,
                    Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
                assertEquals(4L, c.endOffsets(List.of(tp)).get(tp));
            }
            p.commitTransaction();
            committed = a.listOffsets(Map.of(tp, OffsetSpec.latest()),
                    new ListOffsetsOptions(IsolationLevel.READ_COMMITTED)).all().get(30, TimeUnit.SECONDS).get(tp).offset();
            assertEquals(8L, committed, "after the commit marker");
        }
    }
}
