/* JoinApp.java - the Kafka Streams application StreamsJoinTest runs in a JVM of its own (so that
 * it can be SIGKILLed): a KStream-KTable join enriching clicks (key: user) with the user's
 * region from a table topic, the table materialized in a state store backed by a changelog.
 * Usage: JoinApp BOOTSTRAP APP_ID GUARANTEE STATE_DIR USERS_TOPIC CLICKS_TOPIC OUT_TOPIC.
 * SIGTERM closes it cleanly (a final commit); SIGKILL leaves what it had in flight. */
package io.strata.it;

import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;

public final class JoinApp {
    private JoinApp() {}

    /** "c7" joined with "r2": what the test expects for each click. */
    static String joined(String click, String region) {
        return click + "@" + region;
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], app = args[1], guarantee = args[2], state = args[3];
        String users = args[4], clicks = args[5], out = args[6];
        StreamsBuilder b = new StreamsBuilder();
        KTable<String, String> regions = b.table(users, Materialized.as("regions")); /* -> changelog */
        b.<String, String>stream(clicks).join(regions, JoinApp::joined).to(out);
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.STATE_DIR_CONFIG, state);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        /* a killed instance's partitions move once its session expires (the broker's minimum) */
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1000);
        KafkaStreams s = new KafkaStreams(b.build(), p);
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            s.close(Duration.ofSeconds(60));
            closed.countDown();
        }));
        s.start();
        closed.await();
    }
}
