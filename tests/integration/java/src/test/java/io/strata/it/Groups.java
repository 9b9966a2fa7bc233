/* Groups.java - what the consumer group tests (ConsumerProtocolTest, Kip848MixedTest) share:
 * records "v<i>" spread over a topic's partitions, members that commit synchronously when their
 * partitions are revoked, polling members (committing after each batch) until a condition
 * holds, and the AdminClient's view of a group. */
package io.strata.it;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;

final class Groups {
    private Groups() {}

    /** Produces value "v" + i (key "k") to partition i % parts of topic, for i in [from, to). */
    static void produce(String topic, int parts, int from, int to) throws Exception {
        try (KafkaProducer<String, String> p = Strata.producer(Map.of())) {
            for (int i = from; i < to; i++)
                p.send(new ProducerRecord<>(topic, i % parts, "k", "v" + i));
            p.flush();
        }
    }

    /** A member of group speaking protocol ("classic" or "consumer", KIP-848), not subscribed yet. */
    static KafkaConsumer<String, String> consumer(String group, String protocol) {
        return protocol.equals("consumer")
                ? Strata.consumer(group, Map.of(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer"))
                : Strata.consumer(group, Map.of());
    }

    /** Subscribes c to topic, committing synchronously when its partitions are revoked. */
    static void subscribe(KafkaConsumer<String, String> c, String topic) {
        c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                c.commitSync();
            }

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> parts) {}
        });
    }

    /** Polls every member in turn, committing synchronously after each batch, until cond holds;
     * each record read goes to onRecord(member, record). Fails after 90 s, naming what it waited
     * for, the members' assignments and state.get(). With no member it only waits. */
    static void pollUntil(List<KafkaConsumer<String, String>> cs,
                          BiConsumer<KafkaConsumer<String, String>, ConsumerRecord<String, String>> onRecord,
                          BooleanSupplier cond, String what, Supplier<String> state) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline)
                throw new AssertionError("timed out waiting for " + what + "; assignments "
                        + cs.stream().map(c -> c.assignment().toString()).toList() + ", " + state.get());
            if (cs.isEmpty()) {
                try {
                    Thread.sleep(100);
                } catch (InterruptedException e) {
                    throw new AssertionError(e);
                }
            }
            for (KafkaConsumer<String, String> c : cs) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100)))
                    onRecord.accept(c, r);
                c.commitSync();
            }
        }
    }

    /** The group as the AdminClient describes it (DescribeConsumerGroups). */
    static ConsumerGroupDescription describe(String group) throws Exception {
        try (Admin a = Strata.admin()) {
            return a.describeConsumerGroups(List.of(group)).all().get(30, TimeUnit.SECONDS).get(group);
        }
    }
}
