/* AdminTest.java - the Java AdminClient against stratad: topics (create, delete, describe,
 * partitions), configs (describe, incremental alter), records (delete, list offsets incl.
 * max timestamp), the cluster, and consumer groups (list, describe, delete, alter and delete
 * committed offsets), log directories (describeLogDirs, describeReplicaLogDirs). Errors are
 * Kafka's exact exceptions. */
package io.strata.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.DescribeReplicaLogDirsResult.ReplicaLogDirInfo;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionReplica;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.message.DescribeTopicPartitionsRequestData;
import org.apache.kafka.common.message.DescribeTopicPartitionsResponseData;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.requests.DescribeTopicPartitionsRequest;
import org.apache.kafka.common.requests.DescribeTopicPartitionsResponse;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class AdminTest {
    static Admin admin;

    @BeforeAll
    static void open() {
        admin = Strata.admin();
    }

    @AfterAll
    static void close() {
        admin.close(Duration.ofSeconds(10));
    }

    static <T> T get(org.apache.kafka.common.KafkaFuture<T> f) throws Exception {
        return f.get(30, TimeUnit.SECONDS);
    }

    static Throwable cause(org.apache.kafka.common.KafkaFuture<?> f) {
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(30, TimeUnit.SECONDS));
        return e.getCause();
    }

    @Test
    void createDescribeDeleteTopics() throws Exception {
        String t = Strata.unique("jadm-topic");
        get(admin.createTopics(List.of(new NewTopic(t, 3, (short) 1)
                .configs(Map.of("retention.ms", "3600000")))).all());
        assertInstanceOf(TopicExistsException.class,
                cause(admin.createTopics(List.of(new NewTopic(t, 1, (short) 1))).all()));
        assertTrue(get(admin.listTopics().names()).contains(t));
        TopicDescription d = get(admin.describeTopics(List.of(t)).allTopicNames()).get(t);
        assertEquals(3, d.partitions().size());
        assertFalse(d.isInternal());
        assertNotNull(d.topicId());
        for (var p : d.partitions()) {
            assertNotNull(p.leader());
            assertEquals(1, p.replicas().size());
            assertEquals(1, p.isr().size());
        }
        /* by id too */
        TopicDescription byId = get(admin.describeTopics(
                org.apache.kafka.common.TopicCollection.ofTopicIds(List.of(d.topicId()))).allTopicIds())
                .get(d.topicId());
        assertEquals(t, byId.name());

        get(admin.createPartitions(Map.of(t, NewPartitions.increaseTo(5))).all());
        assertEquals(5, get(admin.describeTopics(List.of(t)).allTopicNames()).get(t).partitions().size());
        assertInstanceOf(InvalidPartitionsException.class,
                cause(admin.createPartitions(Map.of(t, NewPartitions.increaseTo(2))).all()));

        get(admin.deleteTopics(List.of(t)).all());
        assertInstanceOf(UnknownTopicOrPartitionException.class,
                cause(admin.deleteTopics(List.of(t)).all()));
        assertInstanceOf(UnknownTopicOrPartitionException.class,
                cause(admin.describeTopics(List.of(t)).allTopicNames()));
    }

    @Test
    void configs() throws Exception {
        String t = Strata.unique("jadm-cfg");
        Strata.createTopic(admin, t, 1, Map.of("retention.ms", "3600000"));
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, t);
        Config c = get(admin.describeConfigs(List.of(r)).all()).get(r);
        assertEquals("3600000", c.get("retention.ms").value());
        assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, c.get("retention.ms").source());
        assertNotNull(c.get("cleanup.policy"));
        get(admin.incrementalAlterConfigs(Map.of(r, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("segment.bytes", "1048576"), AlterConfigOp.OpType.SET))))
                .all());
        c = get(admin.describeConfigs(List.of(r)).all()).get(r);
        assertEquals("7200000", c.get("retention.ms").value());
        assertEquals("1048576", c.get("segment.bytes").value());
        get(admin.incrementalAlterConfigs(Map.of(r, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE))))
                .all());
        c = get(admin.describeConfigs(List.of(r)).all()).get(r);
        assertTrue(c.get("retention.ms").isDefault() || c.get("retention.ms").source()
                != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG);

        /* broker configs */
        Node n = get(admin.describeCluster().nodes()).iterator().next();
        ConfigResource br = new ConfigResource(ConfigResource.Type.BROKER, n.idString());
        Config bc = get(admin.describeConfigs(List.of(br)).all()).get(br);
        assertNotNull(bc.get("num.partitions"));
    }

    @Test
    void describeCluster() throws Exception {
        DescribeClusterResult d = admin.describeCluster();
        Collection<Node> nodes = get(d.nodes());
        assertEquals(1, nodes.size());
        Node c = get(d.controller());
        assertNotNull(c);
        assertNotNull(get(d.clusterId()));
        String[] hp = Strata.bootstrap().split(":");
        Node n = nodes.iterator().next();
        assertEquals(Integer.parseInt(hp[1]), n.port());
    }

    @Test
    void deleteRecordsAndListOffsets() throws Exception {
        String t = Strata.unique("jadm-rec");
        Strata.createTopic(admin, t, 1, null);
        long t0 = 1_650_000_000_000L;
        try (KafkaProducer<String, String> p = Strata.producer(Map.of())) {
            for (int i = 0; i < 20; i++) /* timestamps rise except record 7, the newest */
                p.send(new ProducerRecord<>(t, 0, i == 7 ? t0 + 1_000_000 : t0 + i, "k", "v" + i));
            p.flush();
        }
        TopicPartition tp = new TopicPartition(t, 0);
        Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> lo;
        lo = get(admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).all());
        assertEquals(0L, lo.get(tp).offset());
        lo = get(admin.listOffsets(Map.of(tp, OffsetSpec.latest())).all());
        assertEquals(20L, lo.get(tp).offset());
        lo = get(admin.listOffsets(Map.of(tp, OffsetSpec.maxTimestamp())).all());
        assertEquals(7L, lo.get(tp).offset());
        assertEquals(t0 + 1_000_000, lo.get(tp).timestamp());
        lo = get(admin.listOffsets(Map.of(tp, OffsetSpec.forTimestamp(t0 + 10))).all());
        assertEquals(7L, lo.get(tp).offset()); /* the first record at or after t0+10 is record 7 */

        get(admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(12))).all());
        lo = get(admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).all());
        assertEquals(12L, lo.get(tp).offset());
        var low = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(12))).lowWatermarks();
        assertEquals(12L, get(low.get(tp)).lowWatermark());
        try (KafkaConsumer<String, String> c = Strata.consumer(null, Map.of())) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            ConsumerRecord<String, String> first = null;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (first == null && System.nanoTime() < deadline)
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    first = r;
                    break;
                }
            assertNotNull(first);
            assertEquals(12L, first.offset());
        }
        /* past the high watermark: OFFSET_OUT_OF_RANGE */
        assertInstanceOf(org.apache.kafka.common.errors.OffsetOutOfRangeException.class,
                cause(admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(21))).all()));
    }

    @Test
    void consumerGroups() throws Exception {
        String t = Strata.unique("jadm-grp");
        String g = Strata.unique("jadm-g");
        Strata.createTopic(admin, t, 2, null);
        ConsumerTest.fill(t, 2, 10);
        try (KafkaConsumer<String, String> c = Strata.consumer(g, Map.of())) {
            c.subscribe(List.of(t));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            int n = 0;
            while (n < 20 && System.nanoTime() < deadline)
                n += c.poll(Duration.ofMillis(200)).count();
            assertEquals(20, n);
            c.commitSync();
            Collection<GroupListing> groups = get(admin.listGroups().all());
            GroupListing gl = groups.stream().filter(x -> x.groupId().equals(g)).findFirst().orElseThrow();
            assertEquals(GroupState.STABLE, gl.groupState().orElseThrow());
            ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(g)).describedGroups().get(g));
            assertEquals(GroupState.STABLE, d.groupState());
            assertEquals(1, d.members().size());
            assertEquals(2, d.members().iterator().next().assignment().topicPartitions().size());
            assertNotNull(d.coordinator());
            /* a live group cannot be deleted */
            assertInstanceOf(org.apache.kafka.common.errors.GroupNotEmptyException.class,
                    cause(admin.deleteConsumerGroups(List.of(g)).all()));
        }
        TopicPartition p0 = new TopicPartition(t, 0), p1 = new TopicPartition(t, 1);
        Map<TopicPartition, OffsetAndMetadata> off =
                get(admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata());
        assertEquals(Map.of(p0, 10L, p1, 10L), off.entrySet().stream()
                .collect(Collectors.toMap(Map.Entry::getKey, e -> e.getValue().offset())));
        get(admin.alterConsumerGroupOffsets(g, Map.of(p0, new OffsetAndMetadata(3, "meta"))).all());
        off = get(admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata());
        assertEquals(3L, off.get(p0).offset());
        assertEquals("meta", off.get(p0).metadata());
        get(admin.deleteConsumerGroupOffsets(g, Set.of(p1)).all());
        off = get(admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata());
        assertEquals(Set.of(p0), off.keySet());
        ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(g)).describedGroups().get(g));
        assertEquals(GroupState.EMPTY, d.groupState());
        get(admin.deleteConsumerGroups(List.of(g)).all());
        assertInstanceOf(GroupIdNotFoundException.class, cause(admin.deleteConsumerGroups(List.of(g)).all()));
        assertTrue(get(admin.listGroups().all()).stream().noneMatch(x -> x.groupId().equals(g)));
    }

    /** DescribeTopicPartitions v0 (KIP-966), which Admin.describeTopics uses first: names
     * sorted, pages of response_partition_limit partitions joined by the cursor, unknown
     * topics answered with UNKNOWN_TOPIC_OR_PARTITION. */
    @Test
    void describeTopicPartitions() throws Exception {
        String a = Strata.unique("jdtp-a"), b = a.replace("jdtp-a", "jdtp-b");
        Strata.createTopic(admin, a, 2, null);
        Strata.createTopic(admin, b, 5, null);
        String missing = a.replace("jdtp-a", "jdtp-c");
        DescribeTopicPartitionsRequestData q = new DescribeTopicPartitionsRequestData().setResponsePartitionLimit(3);
        for (String t : List.of(missing, b, a))
            q.topics().add(new DescribeTopicPartitionsRequestData.TopicRequest().setName(t));
        DescribeTopicPartitionsResponseData r = ((DescribeTopicPartitionsResponse) Wire.roundTrip(
                new DescribeTopicPartitionsRequest.Builder(q), (short) 0)).data();
        /* page 1: a 0-1, b 0; the next page starts at b 1 */
        assertEquals(List.of(a, b), r.topics().stream().map(t -> t.name()).collect(Collectors.toList()));
        assertEquals(List.of(0, 1), r.topics().find(a).partitions().stream().map(p -> p.partitionIndex())
                .collect(Collectors.toList()));
        assertEquals(List.of(0), r.topics().find(b).partitions().stream().map(p -> p.partitionIndex())
                .collect(Collectors.toList()));
        var p0 = r.topics().find(a).partitions().get(0);
        assertEquals(List.of(p0.leaderId()), p0.replicaNodes());
        assertEquals(List.of(p0.leaderId()), p0.isrNodes());
        assertNotNull(r.topics().find(a).topicId());
        assertEquals(b, r.nextCursor().topicName());
        assertEquals(1, r.nextCursor().partitionIndex());
        /* page 2: b 1-3 */
        q.setCursor(new DescribeTopicPartitionsRequestData.Cursor().setTopicName(b).setPartitionIndex(1));
        r = ((DescribeTopicPartitionsResponse) Wire.roundTrip(new DescribeTopicPartitionsRequest.Builder(q),
                (short) 0)).data();
        assertEquals(List.of(b), r.topics().stream().map(t -> t.name()).collect(Collectors.toList()));
        assertEquals(List.of(1, 2, 3), r.topics().find(b).partitions().stream().map(p -> p.partitionIndex())
                .collect(Collectors.toList()));
        assertEquals(4, r.nextCursor().partitionIndex());
        /* page 3: b 4, then the unknown topic; no next page */
        q.setCursor(new DescribeTopicPartitionsRequestData.Cursor().setTopicName(b).setPartitionIndex(4));
        r = ((DescribeTopicPartitionsResponse) Wire.roundTrip(new DescribeTopicPartitionsRequest.Builder(q),
                (short) 0)).data();
        assertEquals(List.of(b, missing), r.topics().stream().map(t -> t.name()).collect(Collectors.toList()));
        assertEquals(Errors.UNKNOWN_TOPIC_OR_PARTITION.code(), r.topics().find(missing).errorCode());
        assertEquals(null, r.nextCursor());

        /* and through the Admin client, one partition per response */
        Map<String, TopicDescription> d = get(admin.describeTopics(List.of(a, b),
                new DescribeTopicsOptions().partitionSizeLimitPerResponse(1)).allTopicNames());
        assertEquals(2, d.get(a).partitions().size());
        assertEquals(5, d.get(b).partitions().size());
        assertEquals(4, d.get(b).partitions().get(4).partition());
    }

    /** DescribeLogDirs: the broker's one log directory, by absolute path, with every partition's
     * size (a partition holding records is larger than an empty one), no offset lag, and its
     * filesystem's total and usable bytes (v4). */
    @Test
    void describeLogDirs() throws Exception {
        String t = Strata.unique("jlogdirs");
        Strata.createTopic(admin, t, 2, null);
        try (KafkaProducer<String, String> p = Strata.producer(Map.of())) {
            for (int i = 0; i < 50; i++)
                p.send(new ProducerRecord<>(t, 0, "k" + i, "value " + i));
            p.flush();
        }
        int node = get(admin.describeCluster().nodes()).iterator().next().id();
        Map<String, LogDirDescription> dirs = get(admin.describeLogDirs(List.of(node)).allDescriptions()).get(node);
        assertEquals(1, dirs.size(), dirs.toString());
        String path = dirs.keySet().iterator().next();
        LogDirDescription d = dirs.get(path);
        assertTrue(path.startsWith("/"), path);
        assertEquals(null, d.error());
        ReplicaInfo p0 = d.replicaInfos().get(new TopicPartition(t, 0));
        ReplicaInfo p1 = d.replicaInfos().get(new TopicPartition(t, 1));
        assertNotNull(p0, d.replicaInfos().keySet().toString());
        assertNotNull(p1);
        assertTrue(p0.size() > 50 * "value 0".length(), "size " + p0.size());
        assertEquals(0, p1.size());
        assertEquals(0, p0.offsetLag());
        assertFalse(p0.isFuture());
        assertTrue(d.totalBytes().isPresent() && d.usableBytes().isPresent());
        assertTrue(d.totalBytes().getAsLong() > 0);
        assertTrue(d.usableBytes().getAsLong() >= 0 && d.usableBytes().getAsLong() <= d.totalBytes().getAsLong());

        /* one partition asked by name (the request's topic list); an unknown one is left out */
        Map<TopicPartitionReplica, ReplicaLogDirInfo> r = get(admin.describeReplicaLogDirs(List.of(
                new TopicPartitionReplica(t, 0, node), new TopicPartitionReplica(t, 7, node))).all());
        assertEquals(path, r.get(new TopicPartitionReplica(t, 0, node)).getCurrentReplicaLogDir());
        assertEquals(null, r.get(new TopicPartitionReplica(t, 7, node)).getCurrentReplicaLogDir());
    }
}
