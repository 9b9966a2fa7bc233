/* ConsumerTest.java - KafkaConsumer against stratad: assign/seek/offsetsForTimes without a
 * group, and subscribe with the classic group protocol (eager range and cooperative-sticky
 * assignors, static membership), commits read back. */
package io.strata.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.MemberToRemove;
import org.apache.kafka.clients.admin.RemoveMembersFromConsumerGroupOptions;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;

class ConsumerTest {
    static final long T0 = 1_600_000_000_000L;

    /** Produces `per` records to each of `parts` partitions; record i of partition p has
     * timestamp T0 + 1000 * i and value "p:i". */
    static void fill(String topic, int parts, int per) throws Exception {
        try (KafkaProducer<String, String> p = Strata.producer(Map.of())) {
            for (int i = 0; i < per; i++)
                for (int part = 0; part < parts; part++)
                    p.send(new ProducerRecord<>(topic, part, T0 + 1000L * i, "k" + i, part + ":" + i));
            p.flush();
        }
    }

    @Test
    void assignSeekOffsetsForTimes() throws Exception {
        String topic = Strata.unique("jcons-seek");
        Strata.createTopic(topic, 2);
        fill(topic, 2, 50);
        List<TopicPartition> tps = Strata.partitions(topic, 2);
        try (KafkaConsumer<String, String> c = Strata.consumer(null, Map.of())) {
            c.assign(tps);
            Map<TopicPartition, Long> begin = c.beginningOffsets(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps);
            for (TopicPartition tp : tps) {
                assertEquals(0L, begin.get(tp));
                assertEquals(50L, end.get(tp));
            }
            Map<TopicPartition, Long> q = new HashMap<>();
            q.put(tps.get(0), T0 + 10_500); /* first record at or after: index 11 */
            q.put(tps.get(1), T0 + 1000L * 100); /* after the last record: null */
            Map<TopicPartition, OffsetAndTimestamp> ts = c.offsetsForTimes(q);
            assertEquals(11L, ts.get(tps.get(0)).offset());
            assertEquals(T0 + 11_000, ts.get(tps.get(0)).timestamp());
            assertNull(ts.get(tps.get(1)));

            c.seek(tps.get(0), ts.get(tps.get(0)).offset());
            c.seek(tps.get(1), 45);
            List<ConsumerRecord<String, String>> got = new ArrayList<>();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (got.size() < 39 + 5 && System.nanoTime() < deadline)
                c.poll(Duration.ofMillis(200)).forEach(got::add);
            assertEquals(44, got.size());
            for (ConsumerRecord<String, String> r : got) {
                long first = r.partition() == 0 ? 11 : 45;
                assertTrue(r.offset() >= first);
                assertEquals(r.partition() + ":" + r.offset(), r.value());
            }
            assertEquals(50L, c.position(tps.get(0)));
            c.seekToEnd(List.of(tps.get(1)));
            assertEquals(50L, c.position(tps.get(1)));
            c.seekToBeginning(List.of(tps.get(1)));
            assertEquals(0L, c.position(tps.get(1)));
        }
    }

    /** Polls every consumer in turn (one thread, short polls) until the group's assignment
     * covers `parts` partitions with no overlap and every member has some. */
    static Map<KafkaConsumer<String, String>, Set<TopicPartition>> settle(
            List<KafkaConsumer<String, String>> cs, int parts, Map<String, Integer> seen) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
        while (System.nanoTime() < deadline) {
            for (KafkaConsumer<String, String> c : cs)
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100)))
                    seen.merge(r.value(), 1, Integer::sum);
            Map<KafkaConsumer<String, String>, Set<TopicPartition>> a = new HashMap<>();
            Set<TopicPartition> all = new HashSet<>();
            int total = 0;
            boolean everyone = true;
            for (KafkaConsumer<String, String> c : cs) {
                Set<TopicPartition> s = new HashSet<>(c.assignment());
                a.put(c, s);
                all.addAll(s);
                total += s.size();
                everyone &= !s.isEmpty();
            }
            if (everyone && all.size() == parts && total == parts)
                return a;
        }
        throw new AssertionError("the group did not settle on " + parts + " partitions");
    }

    static void drain(List<KafkaConsumer<String, String>> cs, Map<String, Integer> seen, int want) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (seen.size() < want && System.nanoTime() < deadline)
            for (KafkaConsumer<String, String> c : cs)
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100)))
                    seen.merge(r.value(), 1, Integer::sum);
        assertEquals(want, seen.size(), "distinct records consumed by the group");
    }

    void twoMembers(String assignor) throws Exception {
        String topic = Strata.unique("jcons-grp");
        String group = Strata.unique("jgrp");
        Strata.createTopic(topic, 4);
        fill(topic, 4, 25);
        List<String> revokedLog = new ArrayList<>();
        Map<String, Object> cfg = Map.of(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor,
                ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "true",
                ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, 200);
        Map<String, Integer> seen = new HashMap<>();
        try (KafkaConsumer<String, String> a = Strata.consumer(group, cfg);
             KafkaConsumer<String, String> b = Strata.consumer(group, cfg)) {
            a.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> ps) {
                    if (!ps.isEmpty())
                        revokedLog.add("revoked " + ps.size());
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> ps) {}
            });
            /* a alone takes all four partitions */
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (a.assignment().size() < 4 && System.nanoTime() < deadline)
                a.poll(Duration.ofMillis(100)).forEach(r -> seen.merge(r.value(), 1, Integer::sum));
            assertEquals(4, a.assignment().size());
            b.subscribe(List.of(topic));
            Map<KafkaConsumer<String, String>, Set<TopicPartition>> split = settle(List.of(a, b), 4, seen);
            assertEquals(2, split.get(a).size());
            assertEquals(2, split.get(b).size());
            drain(List.of(a, b), seen, 100);
            if (assignor.equals(CooperativeStickyAssignor.class.getName())) {
                /* cooperative: a gave up only the two partitions b took, never all four */
                assertFalse(revokedLog.contains("revoked 4"), revokedLog.toString());
                assertTrue(revokedLog.contains("revoked 2"), revokedLog.toString());
            } else {
                assertTrue(revokedLog.contains("revoked 4"), revokedLog.toString());
            }
            a.commitSync();
            b.commitSync();
        }
        try (Admin adm = Strata.admin()) {
            Map<TopicPartition, OffsetAndMetadata> off =
                    adm.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
            assertEquals(4, off.size());
            for (OffsetAndMetadata o : off.values())
                assertEquals(25L, o.offset());
        }
    }

    @Test
    void subscribeEagerRange() throws Exception {
        twoMembers(RangeAssignor.class.getName());
    }

    @Test
    void subscribeCooperativeSticky() throws Exception {
        twoMembers(CooperativeStickyAssignor.class.getName());
    }

    /** A static member (group.instance.id) that leaves and comes back gets its partitions back,
     * the group shows its instance id, and its committed offset is where it resumes. */
    @Test
    void staticMembership() throws Exception {
        String topic = Strata.unique("jcons-static");
        String group = Strata.unique("jgrp-static");
        Strata.createTopic(topic, 2);
        fill(topic, 2, 10);
        Map<String, Object> cfg = Map.of(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "member-1",
                ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 30000);
        Map<String, Integer> seen = new HashMap<>();
        try (KafkaConsumer<String, String> c = Strata.consumer(group, cfg)) {
            c.subscribe(List.of(topic));
            drain(List.of(c), seen, 20);
            c.commitSync();
            try (Admin adm = Strata.admin()) {
                ConsumerGroupDescription d = adm.describeConsumerGroups(List.of(group)).describedGroups()
                        .get(group).get(30, TimeUnit.SECONDS);
                assertEquals(1, d.members().size());
                MemberDescription m = d.members().iterator().next();
                assertEquals("member-1", m.groupInstanceId().orElse(null));
                assertEquals(2, m.assignment().topicPartitions().size());
            }
        }
        /* a static member does not leave when it closes: the group keeps it until an admin
         * removes it (LeaveGroup v3+ by instance id), as Streams does on close */
        try (Admin adm = Strata.admin()) {
            ConsumerGroupDescription d = adm.describeConsumerGroups(List.of(group)).describedGroups()
                    .get(group).get(30, TimeUnit.SECONDS);
            assertEquals(1, d.members().size());
            adm.removeMembersFromConsumerGroup(group, new RemoveMembersFromConsumerGroupOptions(
                    List.of(new MemberToRemove("member-1")))).all().get(30, TimeUnit.SECONDS);
            d = adm.describeConsumerGroups(List.of(group)).describedGroups().get(group).get(30, TimeUnit.SECONDS);
            assertEquals(0, d.members().size());
            assertEquals(GroupState.EMPTY, d.groupState());
        }
        fill(topic, 2, 1); /* one more record each */
        try (KafkaConsumer<String, String> c = Strata.consumer(group, cfg)) {
            c.subscribe(List.of(topic));
            Map<String, Integer> more = new HashMap<>();
            drain(List.of(c), more, 2);
            assertEquals(Set.of("0:0", "1:0"), more.keySet()); /* fill() restarts i at 0 */
            assertEquals(2, c.assignment().size());
            assertNotNull(c.committed(c.assignment()));
        }
    }
}
