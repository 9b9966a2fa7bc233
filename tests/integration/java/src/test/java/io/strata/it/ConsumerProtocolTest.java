/* ConsumerProtocolTest.java - KIP-848, Kafka 4's consumer group protocol (group.protocol=consumer)
 * against stratad: server-side assignment shared by members that join and leave while records
 * flow (no record lost or read twice with synchronous commits), a member that stops
 * heartbeating (group.consumer.session.timeout.ms, set short by test_java.py), the
 * ConsumerGroupDescribe view through the AdminClient (type CONSUMER) and on the wire, and
 * Kafka's error codes for the cases a well-behaved client never produces. */
package io.strata.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.message.ConsumerGroupDescribeRequestData;
import org.apache.kafka.common.message.ConsumerGroupDescribeResponseData;
import org.apache.kafka.common.message.ConsumerGroupHeartbeatRequestData;
import org.apache.kafka.common.message.ConsumerGroupHeartbeatResponseData;
import org.apache.kafka.common.message.DescribeGroupsRequestData;
import org.apache.kafka.common.message.DescribeGroupsResponseData;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.requests.ConsumerGroupDescribeRequest;
import org.apache.kafka.common.requests.ConsumerGroupDescribeResponse;
import org.apache.kafka.common.requests.ConsumerGroupHeartbeatRequest;
import org.apache.kafka.common.requests.ConsumerGroupHeartbeatResponse;
import org.apache.kafka.common.requests.DescribeGroupsRequest;
import org.apache.kafka.common.requests.DescribeGroupsResponse;
import org.junit.jupiter.api.Test;

class ConsumerProtocolTest {
    private static KafkaConsumer<String, String> member(String group) {
        return Groups.consumer(group, "consumer");
    }

    /** Polls every consumer (committing after each batch) until cond holds; every record read
     * goes into seen, twice-read ones fail. */
    private static void pollUntil(List<KafkaConsumer<String, String>> cs, Map<String, Integer> seen,
                                  Map<KafkaConsumer<String, String>, Integer> reads, BooleanSupplier cond,
                                  String what) {
        Groups.pollUntil(cs, (c, r) -> {
            Integer prev = seen.put(r.value(), r.partition());
            if (prev != null)
                throw new AssertionError(r.value() + " read twice");
            reads.merge(c, 1, Integer::sum);
        }, cond, what, () -> "read " + seen.size());
    }

    @Test
    void membersShareMoveAndLeaveWithoutLossOrDuplicates() throws Exception {
        String topic = Strata.unique("j848-share");
        String group = Strata.unique("j848-g");
        int parts = 6;
        Strata.createTopic(topic, parts);
        Groups.produce(topic, parts, 0, 300);
        Map<String, Integer> seen = new HashMap<>();
        Map<KafkaConsumer<String, String>, Integer> reads = new HashMap<>();
        KafkaConsumer<String, String> c1 = member(group), c2 = member(group), c3 = member(group);
        try {
            Groups.subscribe(c1, topic);
            Groups.subscribe(c2, topic);
            List<KafkaConsumer<String, String>> two = List.of(c1, c2);
            pollUntil(two, seen, reads, () -> seen.size() == 300 && c1.assignment().size() == 3
                    && c2.assignment().size() == 3, "two members with 3 partitions each and 300 records");
            Set<TopicPartition> union = new HashSet<>(c1.assignment());
            union.addAll(c2.assignment());
            assertEquals(new HashSet<>(Strata.partitions(topic, parts)), union);

            /* A third member joins: partitions move to it only once revoked elsewhere. */
            Groups.subscribe(c3, topic);
            List<KafkaConsumer<String, String>> three = List.of(c1, c2, c3);
            pollUntil(three, seen, reads, () -> c1.assignment().size() == 2 && c2.assignment().size() == 2
                    && c3.assignment().size() == 2, "three members with 2 partitions each");
            try (Admin a = Strata.admin()) {
                ConsumerGroupDescription d = Groups.describe(group);
                assertEquals(GroupType.CONSUMER, d.type());
                assertEquals(3, d.members().size());
                assertEquals("uniform", d.partitionAssignor());
                Set<TopicPartition> assigned = new HashSet<>();
                for (MemberDescription m : d.members()) {
                    assertEquals(2, m.assignment().topicPartitions().size(), d.toString());
                    assigned.addAll(m.assignment().topicPartitions());
                    assertTrue(m.memberEpoch().isPresent() && m.memberEpoch().get() > 0, d.toString());
                }
                assertEquals(parts, assigned.size());
                boolean listed = false;
                for (GroupListing g : a.listGroups().all().get(30, TimeUnit.SECONDS))
                    if (g.groupId().equals(group)) {
                        listed = true;
                        assertEquals(GroupType.CONSUMER, g.type().orElseThrow());
                    }
                assertTrue(listed);
            }
            Groups.produce(topic, parts, 300, 600);
            pollUntil(three, seen, reads, () -> seen.size() == 600, "600 records");
            assertTrue(reads.getOrDefault(c3, 0) >= 100, "the new member read " + reads.get(c3));

            /* The third member leaves (epoch -1): its partitions go back to the others. */
            c3.close();
            pollUntil(two, seen, reads, () -> c1.assignment().size() == 3 && c2.assignment().size() == 3,
                    "two members with 3 partitions each again");
            Groups.produce(topic, parts, 600, 900);
            pollUntil(two, seen, reads, () -> seen.size() == 900, "900 records");
            ConsumerGroupDescription d = Groups.describe(group);
            assertEquals(2, d.members().size());
            assertEquals(GroupState.STABLE, d.groupState());
        } finally {
            c1.close();
            c2.close();
            c3.close();
        }
    }

    private static ConsumerGroupHeartbeatResponseData hb(ConsumerGroupHeartbeatRequestData q) throws Exception {
        return ((ConsumerGroupHeartbeatResponse) Wire.roundTrip(new ConsumerGroupHeartbeatRequest.Builder(q),
                (short) 0)).data();
    }

    private static ConsumerGroupDescribeResponseData.DescribedGroup describe(String group) throws Exception {
        return ((ConsumerGroupDescribeResponse) Wire.roundTrip(new ConsumerGroupDescribeRequest.Builder(
                new ConsumerGroupDescribeRequestData().setGroupIds(List.of(group))), (short) 0)).data()
                .groups().get(0);
    }

    /** A member that stops heartbeating (a crash) loses its partitions after the session
     * timeout; until then the partitions it owns are not given to anyone else. */
    @Test
    void crashedMemberIsExpiredAndItsPartitionsMove() throws Exception {
        String topic = Strata.unique("j848-crash");
        String group = Strata.unique("j848-g");
        Strata.createTopic(topic, 2);
        ConsumerGroupHeartbeatResponseData r = hb(new ConsumerGroupHeartbeatRequestData().setGroupId(group)
                .setMemberId(Uuid.randomUuid().toString()).setMemberEpoch(0).setRebalanceTimeoutMs(60000)
                .setSubscribedTopicNames(List.of(topic)).setTopicPartitions(List.of()));
        assertEquals(Errors.NONE.code(), r.errorCode());
        assertEquals(1, r.memberEpoch());
        assertEquals(2, r.assignment().topicPartitions().get(0).partitions().size());
        Groups.produce(topic, 2, 0, 100);
        Map<String, Integer> seen = new HashMap<>();
        Map<KafkaConsumer<String, String>, Integer> reads = new HashMap<>();
        try (KafkaConsumer<String, String> c = member(group)) {
            Groups.subscribe(c, topic);
            /* The wire member owns both partitions and never revokes: c waits for them, then
             * gets both once the session expired (6 s in test_java.py). */
            pollUntil(List.of(c), seen, reads, () -> seen.size() == 100 && c.assignment().size() == 2,
                    "the crashed member's partitions");
            ConsumerGroupDescribeResponseData.DescribedGroup d = describe(group);
            assertEquals(1, d.members().size());
            assertEquals("Stable", d.groupState());
            assertEquals(d.assignmentEpoch(), d.members().get(0).memberEpoch());
            assertEquals(topic, d.members().get(0).assignment().topicPartitions().get(0).topicName());
            assertEquals(List.of(topic), d.members().get(0).subscribedTopicNames());
        }
    }

    /** Kafka's errors for what a well-behaved client does not send. */
    @Test
    void heartbeatErrorsAreKafkas() throws Exception {
        String topic = Strata.unique("j848-err");
        String group = Strata.unique("j848-g");
        Strata.createTopic(topic, 1);
        String id = Uuid.randomUuid().toString();
        ConsumerGroupHeartbeatRequestData join = new ConsumerGroupHeartbeatRequestData().setGroupId(group)
                .setMemberId(id).setMemberEpoch(0).setRebalanceTimeoutMs(60000).setInstanceId("static-1")
                .setSubscribedTopicNames(List.of(topic)).setTopicPartitions(List.of());
        assertEquals(Errors.UNSUPPORTED_ASSIGNOR.code(),
                hb(join.duplicate().setServerAssignor("sticky")).errorCode());
        ConsumerGroupHeartbeatResponseData r = hb(join.duplicate().setServerAssignor("range"));
        assertEquals(Errors.NONE.code(), r.errorCode());
        assertEquals(id, r.memberId());
        int epoch = r.memberEpoch();
        assertEquals("range", describe(group).assignorName());
        /* the same instance id under another member id while the first is active */
        assertEquals(Errors.UNRELEASED_INSTANCE_ID.code(),
                hb(join.duplicate().setMemberId(Uuid.randomUuid().toString())).errorCode());
        ConsumerGroupHeartbeatRequestData beat = new ConsumerGroupHeartbeatRequestData().setGroupId(group)
                .setMemberId(id).setMemberEpoch(epoch);
        assertEquals(Errors.FENCED_MEMBER_EPOCH.code(), hb(beat.duplicate().setMemberEpoch(epoch + 5)).errorCode());
        assertEquals(Errors.UNKNOWN_MEMBER_ID.code(),
                hb(beat.duplicate().setMemberId(Uuid.randomUuid().toString())).errorCode());
        assertEquals(Errors.NONE.code(), hb(beat).errorCode());
        /* static member leaves for now (-2): a new member id with its instance id takes over,
         * with its epoch and assignment */
        assertEquals(Errors.NONE.code(), hb(beat.duplicate().setMemberEpoch(-2)).errorCode());
        String id2 = Uuid.randomUuid().toString();
        r = hb(join.duplicate().setMemberId(id2));
        assertEquals(Errors.NONE.code(), r.errorCode());
        assertEquals(epoch, r.memberEpoch());
        assertEquals(1, r.assignment().topicPartitions().size());
        assertEquals(id2, describe(group).members().get(0).memberId());
        /* leave (-1): the group is empty */
        r = hb(beat.duplicate().setMemberId(id2).setMemberEpoch(-1));
        assertEquals(Errors.NONE.code(), r.errorCode());
        assertEquals(-1, r.memberEpoch());
        ConsumerGroupDescribeResponseData.DescribedGroup d = describe(group);
        assertEquals("Empty", d.groupState());
        assertEquals(0, d.members().size());

        /* A classic group with members is not a consumer group until a consumer-protocol
         * member joins it (online upgrade); it is classic again once that member left. */
        String classic = Strata.unique("j848-classic");
        try (KafkaConsumer<String, String> c = Strata.consumer(classic, Map.of())) {
            c.subscribe(List.of(topic));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (c.assignment().isEmpty() && System.nanoTime() < deadline)
                c.poll(Duration.ofMillis(100));
            assertFalse(c.assignment().isEmpty());
            assertEquals(Errors.GROUP_ID_NOT_FOUND.code(), describe(classic).errorCode());
            String wid = Uuid.randomUuid().toString();
            r = hb(join.duplicate().setGroupId(classic).setMemberId(wid).setInstanceId(null));
            assertEquals(Errors.NONE.code(), r.errorCode());
            d = describe(classic);
            assertEquals(Errors.NONE.code(), d.errorCode());
            assertEquals(2, d.members().size());
            /* the classic API sees no classic group (Kafka: Dead below DescribeGroups v6) */
            DescribeGroupsResponseData.DescribedGroup cd = ((DescribeGroupsResponse) Wire.roundTrip(
                    new DescribeGroupsRequest.Builder(new DescribeGroupsRequestData().setGroups(List.of(classic))),
                    (short) 5)).data().groups().get(0);
            assertEquals(Errors.NONE.code(), cd.errorCode());
            assertEquals("Dead", cd.groupState());
            assertEquals(0, cd.members().size());
            r = hb(beat.duplicate().setGroupId(classic).setMemberId(wid).setMemberEpoch(-1));
            assertEquals(Errors.NONE.code(), r.errorCode());
            assertEquals(Errors.GROUP_ID_NOT_FOUND.code(), describe(classic).errorCode());
        }
        assertEquals(Errors.GROUP_ID_NOT_FOUND.code(), describe(Strata.unique("j848-none")).errorCode());
    }
}
