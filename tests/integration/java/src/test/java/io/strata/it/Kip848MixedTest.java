/* Kip848MixedTest.java - consumer groups whose members are not all the same client: a KIP-848
 * group (group.protocol=consumer) shared by the Java client and librdkafka 2.x (PyPI
 * confluent-kafka 2.16.1 from scripts/deps.sh's cache, run by /usr/bin/python3), and groups
 * mixing classic-protocol and consumer-protocol members (Kafka 4's online upgrade and
 * downgrade, group.consumer.migration.policy=bidirectional). Every member commits
 * synchronously after each batch and on revocation, so every record must be read exactly
 * once by the group as a whole while members join and leave. */
package io.strata.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;

import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.GroupType;
import org.junit.jupiter.api.Test;

class Kip848MixedTest {
    /* A librdkafka 2.x member: argv bootstrap topic group protocol pydeps. Prints "A <n>" with
     * its partition count on every change, "R <value>" per record; commits synchronously after
     * each batch and on revocation; leaves (close) when a line arrives on stdin. */
    static final String PY = String.join("\n",
            "import select, sys",
            "bs, topic, group, proto, deps = sys.argv[1:6]",
            "sys.path.insert(0, deps)",
            "from confluent_kafka import Consumer, KafkaException",
            "conf = {'bootstrap.servers': bs, 'group.id': group, 'auto.offset.reset': 'earliest',",
            "        'enable.auto.commit': False, 'group.protocol': proto}",
            "if proto == 'classic':",
            "    conf['partition.assignment.strategy'] = 'range'",
            "c = Consumer(conf)",
            "def commit():",
            "    try:",
            "        c.commit(asynchronous=False)",
            "    except KafkaException as e:",
            "        if 'NO_OFFSET' not in str(e):",
            "            raise",
            "def revoked(c, ps):",
            "    commit()",
            "c.subscribe([topic], on_revoke=revoked)",
            "last = -1",
            "while not select.select([sys.stdin], [], [], 0)[0]:",
            "    ms = c.consume(100, 0.1)",
            "    for m in ms:",
            "        if m.error():",
            "            print('E ' + str(m.error()), flush=True)",
            "        else:",
            "            print('R ' + m.value().decode(), flush=True)",
            "    if ms:",
            "        commit()",
            "    n = len(c.assignment())",
            "    if n != last:",
            "        last = n",
            "        print('A %d' % n, flush=True)",
            "c.close()",
            "print('X', flush=True)",
            "");

    /** Records read by the whole group: value -> times read. */
    static final class Seen {
        final Map<String, Integer> count = new ConcurrentHashMap<>();

        void add(String v) {
            count.merge(v, 1, Integer::sum);
        }

        int distinct() {
            return count.size();
        }

        void assertExactlyOnce(int n, String prefix) {
            for (int i = 0; i < n; i++)
                assertEquals(1, count.getOrDefault(prefix + i, 0), "times " + prefix + i + " was read");
            assertEquals(n, count.size(), "distinct records read");
        }
    }

    /** A librdkafka member in its own process. */
    static final class PyMember implements AutoCloseable {
        final Process p;
        final Thread reader;
        final AtomicReference<Integer> assigned = new AtomicReference<>(-1);
        final AtomicReference<String> error = new AtomicReference<>(null);
        volatile boolean exited;

        PyMember(String topic, String group, String protocol, Seen seen) throws Exception {
            String deps = System.getenv("STRATA_PYDEPS");
            if (deps == null || deps.isEmpty())
                deps = System.getProperty("user.home") + "/.cache/strata/pydeps";
            deps = deps + "/confluent-kafka-2.16.1";
            assertTrue(new File(deps, "confluent_kafka").isDirectory(),
                    "confluent-kafka 2.16.1 is not in " + deps + " (run scripts/deps.sh test)");
            p = new ProcessBuilder("/usr/bin/python3", "-c", PY, Strata.bootstrap(), topic, group, protocol, deps)
                    .redirectError(ProcessBuilder.Redirect.INHERIT).start();
            reader = new Thread(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(),
                        StandardCharsets.UTF_8))) {
                    for (String line; (line = r.readLine()) != null;) {
                        if (line.startsWith("A "))
                            assigned.set(Integer.parseInt(line.substring(2)));
                        else if (line.startsWith("R "))
                            seen.add(line.substring(2));
                        else if (line.startsWith("E "))
                            error.set(line.substring(2));
                        else if (line.equals("X"))
                            exited = true;
                    }
                } catch (Exception e) {
                    /* the process ended */
                }
            });
            reader.start();
        }

        int assigned() {
            if (error.get() != null)
                throw new AssertionError("librdkafka member: " + error.get());
            return assigned.get();
        }

        /** Leaves the group (close) and waits for the process to end. */
        @Override
        public void close() throws Exception {
            try (OutputStream in = p.getOutputStream()) {
                in.write("stop\n".getBytes(StandardCharsets.UTF_8));
            } catch (Exception e) {
                /* already gone */
            }
            if (!p.waitFor(60, TimeUnit.SECONDS))
                p.destroyForcibly();
            reader.join(10000);
        }
    }

    static KafkaConsumer<String, String> javaMember(String group, String protocol, String topic) {
        KafkaConsumer<String, String> c = Groups.consumer(group, protocol);
        Groups.subscribe(c, topic);
        return c;
    }

    /** Polls the Java members (committing after each batch) until cond holds. */
    static void pollUntil(List<KafkaConsumer<String, String>> cs, Seen seen, BooleanSupplier cond, String what,
                          Object state) {
        Groups.pollUntil(cs, (c, r) -> seen.add(r.value()), cond, what,
                () -> "other: " + state + ", read " + seen.distinct());
    }

    /** A KIP-848 group with one Java member and one librdkafka member: the partitions are
     * split between them, every record is read once, and when librdkafka leaves the Java
     * member gets everything. */
    @Test
    void javaAndLibrdkafkaShareAConsumerProtocolGroup() throws Exception {
        String topic = Strata.unique("j848mix");
        String group = Strata.unique("j848mix-g");
        int parts = 4;
        Strata.createTopic(topic, parts);
        Groups.produce(topic, parts, 0, 200);
        Seen seen = new Seen();
        try (PyMember py = new PyMember(topic, group, "consumer", seen)) {
            pollUntil(List.of(), seen, () -> py.assigned() == parts, "librdkafka owning every partition",
                    py.assigned);
            try (KafkaConsumer<String, String> j = javaMember(group, "consumer", topic)) {
                List<KafkaConsumer<String, String>> js = List.of(j);
                pollUntil(js, seen, () -> j.assignment().size() == 2 && py.assigned() == 2 && seen.distinct() == 200,
                        "2 + 2 partitions and 200 records", py.assigned);
                ConsumerGroupDescription d = Groups.describe(group);
                assertEquals(GroupType.CONSUMER, d.type());
                assertEquals(2, d.members().size());
                Groups.produce(topic, parts, 200, 400);
                pollUntil(js, seen, () -> seen.distinct() == 400, "400 records", py.assigned);
                py.close();
                assertTrue(py.exited, "the librdkafka member closed");
                pollUntil(js, seen, () -> j.assignment().size() == parts, "the Java member owning everything",
                        py.assigned);
                Groups.produce(topic, parts, 400, 500);
                pollUntil(js, seen, () -> seen.distinct() == 500, "500 records", py.assigned);
            }
        }
        seen.assertExactlyOnce(500, "v");
    }

    /** Kafka 4's online upgrade and downgrade (group.consumer.migration.policy=bidirectional):
     * a classic group of a Java member and a librdkafka member (eager "range") is joined by a
     * Java consumer-protocol member (the group becomes a consumer group whose classic members
     * rebalance through JoinGroup/SyncGroup/Heartbeat), then by a librdkafka consumer-protocol
     * member; when both consumer-protocol members leave, the group is classic again and its
     * two classic members split the partitions. Records flow all along; each is read once. */
    @Test
    void classicAndConsumerProtocolMembersShareAGroup() throws Exception {
        String topic = Strata.unique("j848up");
        String group = Strata.unique("j848up-g");
        int parts = 6;
        Strata.createTopic(topic, parts);
        Groups.produce(topic, parts, 0, 300);
        Seen seen = new Seen();
        try (PyMember pyC = new PyMember(topic, group, "classic", seen);
                KafkaConsumer<String, String> jC = javaMember(group, "classic", topic)) {
            List<KafkaConsumer<String, String>> one = List.of(jC);
            pollUntil(one, seen, () -> jC.assignment().size() == 3 && pyC.assigned() == 3 && seen.distinct() == 300,
                    "two classic members with 3 partitions each and 300 records", pyC.assigned);
            assertEquals(GroupType.CLASSIC, Groups.describe(group).type());

            /* a Java consumer-protocol member joins: upgrade */
            try (KafkaConsumer<String, String> jK = javaMember(group, "consumer", topic)) {
                List<KafkaConsumer<String, String>> two = List.of(jC, jK);
                pollUntil(two, seen, () -> jC.assignment().size() == 2 && jK.assignment().size() == 2
                        && pyC.assigned() == 2, "three members with 2 partitions each", pyC.assigned);
                ConsumerGroupDescription d = Groups.describe(group);
                assertEquals(GroupType.CONSUMER, d.type());
                assertEquals(3, d.members().size());
                Groups.produce(topic, parts, 300, 600);
                pollUntil(two, seen, () -> seen.distinct() == 600, "600 records", pyC.assigned);

                /* and a librdkafka consumer-protocol member */
                try (PyMember pyK = new PyMember(topic, group, "consumer", seen)) {
                    pollUntil(two, seen, () -> pyK.assigned() >= 1 && jC.assignment().size() >= 1
                            && jK.assignment().size() >= 1 && pyC.assigned() >= 1
                            && pyK.assigned() + pyC.assigned() + jC.assignment().size()
                                    + jK.assignment().size() == parts,
                            "four members sharing the partitions",
                            "classic py " + pyC.assigned + ", consumer py " + pyK.assigned);
                    assertEquals(4, Groups.describe(group).members().size());
                    Groups.produce(topic, parts, 600, 900);
                    pollUntil(two, seen, () -> seen.distinct() == 900, "900 records", pyC.assigned);
                }
            }
            /* both consumer-protocol members left: downgrade, a classic rebalance */
            pollUntil(one, seen, () -> jC.assignment().size() == 3 && pyC.assigned() == 3,
                    "the two classic members with 3 partitions each again", pyC.assigned);
            assertEquals(GroupType.CLASSIC, Groups.describe(group).type());
            Groups.produce(topic, parts, 900, 1200);
            pollUntil(one, seen, () -> seen.distinct() == 1200, "1200 records", pyC.assigned);
        }
        seen.assertExactlyOnce(1200, "v");
    }
}
