/* InteropTest.java - one classic consumer group shared by the Java client and librdkafka
 * (confluent-kafka via /usr/bin/python3, as the Python tests use it): the two clients agree on
 * the "range" assignor through the broker's protocol selection, split the partitions, and
 * together read every record. */
package io.strata.it;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.junit.jupiter.api.Test;

class InteropTest {
    /* A librdkafka member: prints "A <partitions>" on each assignment and "R <value>" per
     * record; commits on revocation; leaves when a line arrives on stdin. */
    static final String PY = String.join("\n",
            "import select, sys",
            "from confluent_kafka import Consumer",
            "bs, topic, group = sys.argv[1:4]",
            "c = Consumer({'bootstrap.servers': bs, 'group.id': group, 'auto.offset.reset': 'earliest',",
            "              'enable.auto.commit': False, 'partition.assignment.strategy': 'range'})",
            "def assigned(c, ps):",
            "    print('A ' + ','.join(str(p.partition) for p in ps), flush=True)",
            "def revoked(c, ps):",
            "    try:",
            "        c.commit(asynchronous=False)",
            "    except Exception:",
            "        pass",
            "c.subscribe([topic], on_assign=assigned, on_revoke=revoked)",
            "while not select.select([sys.stdin], [], [], 0)[0]:",
            "    m = c.poll(0.2)",
            "    if m is not None and not m.error():",
            "        print('R ' + m.value().decode(), flush=True)",
            "c.close()",
            "");

    @Test
    void javaAndLibrdkafkaShareAGroup() throws Exception {
        String topic = Strata.unique("jinterop");
        String group = Strata.unique("jinterop-g");
        Strata.createTopic(topic, 4);
        ConsumerTest.fill(topic, 4, 25);
        Set<String> seen = ConcurrentHashMap.newKeySet();
        AtomicReference<String> pyAssigned = new AtomicReference<>("");
        Process py = new ProcessBuilder("/usr/bin/python3", "-c", PY, Strata.bootstrap(), topic, group)
                .redirectError(ProcessBuilder.Redirect.INHERIT).start();
        Thread reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(py.getInputStream(),
                    StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null;) {
                    if (line.startsWith("A "))
                        pyAssigned.set(line.substring(2));
                    else if (line.startsWith("R "))
                        seen.add(line.substring(2));
                }
            } catch (Exception e) {
                /* the process ended */
            }
        });
        reader.start();
        try (KafkaConsumer<String, String> j = Strata.consumer(group,
                Map.of(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, RangeAssignor.class.getName(),
                        ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false"))) {
            /* let librdkafka join first and lead, then join */
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (pyAssigned.get().isEmpty() && System.nanoTime() < deadline)
                Thread.sleep(100);
            j.subscribe(List.of(topic));
            deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
            while ((seen.size() < 100 || j.assignment().size() != 2 || pyAssigned.get().split(",").length != 2)
                    && System.nanoTime() < deadline)
                for (ConsumerRecord<String, String> r : j.poll(Duration.ofMillis(200)))
                    seen.add(r.value());
            assertEquals(2, j.assignment().size(), "Java member's partitions; librdkafka has " + pyAssigned.get());
            assertEquals(2, pyAssigned.get().split(",").length, "librdkafka member's partitions");
            assertEquals(100, seen.size(), "distinct records read by the group");
        } finally {
            try (OutputStream in = py.getOutputStream()) {
                in.write("stop\n".getBytes(StandardCharsets.UTF_8));
            } catch (Exception e) {
                /* already gone */
            }
            if (!py.waitFor(60, TimeUnit.SECONDS))
                py.destroyForcibly();
            reader.join(10000);
        }
    }
}
