/* Strata.java - what every Java integration test shares: the bootstrap address of the stratad
 * that tests/integration/test_java.py started (-Dstrata.bootstrap), unique topic and group
 * names, client properties, and small helpers to create topics and read them back. */
package io.strata.it;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class Strata {
    private Strata() {}

    /** The broker under test, host:port. */
    public static String bootstrap() {
        String b = System.getProperty("strata.bootstrap");
        if (b == null || b.isEmpty())
            throw new IllegalStateException("-Dstrata.bootstrap is not set (run tests/integration/test_java.py)");
        return b;
    }

    /** A topic or group name no other test uses. */
    public static String unique(String prefix) {
        return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
    }

    public static Properties adminProps() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        return p;
    }

    public static Admin admin() {
        return Admin.create(adminProps());
    }

    public static Properties producerProps() {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 30000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 20000);
        return p;
    }

    public static KafkaProducer<String, String> producer(Map<String, Object> extra) {
        Properties p = producerProps();
        p.putAll(extra);
        return new KafkaProducer<>(p);
    }

    public static Properties consumerProps(String group) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        if (group != null)
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        return p;
    }

    public static KafkaConsumer<String, String> consumer(String group, Map<String, Object> extra) {
        Properties p = consumerProps(group);
        p.putAll(extra);
        return new KafkaConsumer<>(p);
    }

    public static void createTopic(Admin admin, String name, int partitions, Map<String, String> configs)
            throws Exception {
        NewTopic t = new NewTopic(name, partitions, (short) 1);
        if (configs != null)
            t.configs(configs);
        admin.createTopics(List.of(t)).all().get(30, TimeUnit.SECONDS);
    }

    public static void createTopic(String name, int partitions) throws Exception {
        try (Admin a = admin()) {
            createTopic(a, name, partitions, null);
        }
    }

    public static List<TopicPartition> partitions(String topic, int n) {
        return IntStream.range(0, n).mapToObj(i -> new TopicPartition(topic, i)).collect(Collectors.toList());
    }

    /** Reads `n` records of `topic` (all `parts` partitions, from the beginning, no group),
     * failing when they do not arrive within a generous bound. */
    public static List<ConsumerRecord<String, String>> readAll(String topic, int parts, int n) {
        List<ConsumerRecord<String, String>> out = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(null, Map.of())) {
            c.assign(partitions(topic, parts));
            c.seekToBeginning(c.assignment());
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (out.size() < n && System.nanoTime() < deadline)
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200)))
                    out.add(r);
        }
        if (out.size() != n)
            throw new AssertionError("read " + out.size() + " records of " + topic + ", want " + n);
        return Collections.unmodifiableList(out);
    }
}
