/* cfg_keys.h - every broker configuration key, defined once.
 * X(id, name, type, default, min, max, reloadable, doc)
 * Kafka's names, meanings and units where Kafka has the key; strata.* otherwise.
 * Integers accept size suffixes (k, m, g; KiB, MiB, GiB). `stratad --help-config`
 * prints this table, and docs/config.md is generated from it. */
#define CFG_KEYS(X)                                                                                \
    X(NODE_ID, "node.id", CFG_INT, "0", 0, INT32_MAX, 0, "Id of this broker in metadata.")         \
    X(LOG_DIR, "log.dir", CFG_STR, "./data", 0, 0, 0,                                              \
      "Data directory: partition logs, metadata, the default archive.")                            \
    X(LISTENERS, "listeners", CFG_STR, "PLAINTEXT://127.0.0.1:9092", 0, 0, 0,                      \
      "Kafka listeners, NAME://HOST:PORT[,NAME://HOST:PORT...] (NAME is a security protocol or a " \
      "name of listener.security.protocol.map; empty HOST = every interface), or HOST:PORT "       \
      "(PLAINTEXT).")                                                                              \
    X(LISTENER_PROTOCOL_MAP, "listener.security.protocol.map", CFG_STR,                            \
      "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL", 0, 0, 0,      \
      "NAME:PROTOCOL pairs giving the security protocol of each listener name (a name that is "    \
      "itself a protocol needs no entry).")                                                        \
    X(ADVERTISED_LISTENERS, "advertised.listeners", CFG_STR, "", 0, 0, 0,                          \
      "NAME://HOST:PORT per listener: the address Metadata gives clients connected to that "       \
      "listener (default: the listener's own; a bare HOST:PORT applies to the first listener).")   \
    X(ADMIN_LISTENER, "strata.admin.listener", CFG_STR, "127.0.0.1:9644", 0, 0, 0,                 \
      "Admin HTTP listener HOST:PORT.")                                                            \
    X(SSL_KEYSTORE_TYPE, "ssl.keystore.type", CFG_STR, "PEM", 0, 0, 0,                             \
      "SSL/SASL_SSL listeners: format of the keystore, PEM or PKCS12.")                            \
    X(SSL_KEYSTORE_LOCATION, "ssl.keystore.location", CFG_STR, "", 0, 0, 0,                        \
      "File with the private key and the certificate chain of the TLS listeners (PEM: both in "    \
      "one file).")                                                                                \
    X(SSL_KEYSTORE_PASSWORD, "ssl.keystore.password", CFG_STR, "", 0, 0, 0,                        \
      "Password of a PKCS12 keystore.")                                                            \
    X(SSL_KEYSTORE_CHAIN, "ssl.keystore.certificate.chain", CFG_STR, "", 0, 0, 0,                  \
      "The certificate chain as inline PEM (instead of ssl.keystore.location).")                   \
    X(SSL_KEYSTORE_KEY, "ssl.keystore.key", CFG_STR, "", 0, 0, 0,                                  \
      "The private key as inline PEM (with ssl.keystore.certificate.chain).")                      \
    X(SSL_KEY_PASSWORD, "ssl.key.password", CFG_STR, "", 0, 0, 0,                                  \
      "Password of an encrypted PEM private key.")                                                 \
    X(SSL_TRUSTSTORE_TYPE, "ssl.truststore.type", CFG_STR, "PEM", 0, 0, 0,                         \
      "Format of the truststore, PEM or PKCS12.")                                                  \
    X(SSL_TRUSTSTORE_LOCATION, "ssl.truststore.location", CFG_STR, "", 0, 0, 0,                    \
      "File with the CA certificates that client certificates must chain to (mTLS).")              \
    X(SSL_TRUSTSTORE_PASSWORD, "ssl.truststore.password", CFG_STR, "", 0, 0, 0,                    \
      "Password of a PKCS12 truststore.")                                                          \
    X(SSL_TRUSTSTORE_CERTS, "ssl.truststore.certificates", CFG_STR, "", 0, 0, 0,                   \
      "The CA certificates as inline PEM (instead of ssl.truststore.location).")                   \
    X(SSL_CLIENT_AUTH, "ssl.client.auth", CFG_STR, "none", 0, 0, 0,                                \
      "Client certificates: none, requested (verified when sent) or required (mTLS); the "         \
      "principal is User:<certificate subject>.")                                                  \
    X(SSL_CIPHER_SUITES, "ssl.cipher.suites", CFG_STR, "", 0, 0, 0,                                \
      "Allowed cipher suites, IANA (Kafka) or OpenSSL names; empty = OpenSSL's defaults.")         \
    X(SSL_ENABLED_PROTOCOLS, "ssl.enabled.protocols", CFG_STR, "TLSv1.2,TLSv1.3", 0, 0, 0,         \
      "TLS versions accepted (TLSv1.2, TLSv1.3).")                                                 \
    X(SSL_HANDSHAKE_TIMEOUT_MS, "strata.ssl.handshake.timeout.ms", CFG_INT, "10000", 100,          \
      INT32_MAX, 0, "Close a TLS connection whose handshake has not finished after this long.")    \
    X(SSL_RELOAD_INTERVAL_MS, "strata.ssl.reload.interval.ms", CFG_INT, "30000", 0, INT32_MAX, 0,  \
      "How often the certificate files are checked for changes and reloaded (0 = on SIGHUP "       \
      "only).")                                                                                    \
    X(ADMIN_TLS_ENABLED, "strata.admin.tls.enabled", CFG_BOOL, "false", 0, 1, 0,                   \
      "Serve the admin HTTP API over TLS (https) with the strata.admin.tls.* files.")              \
    X(ADMIN_TLS_CERT_FILE, "strata.admin.tls.cert.file", CFG_STR, "", 0, 0, 0,                     \
      "PEM certificate chain of the admin API (empty: the Kafka listeners' ssl.keystore.*).")      \
    X(ADMIN_TLS_KEY_FILE, "strata.admin.tls.key.file", CFG_STR, "", 0, 0, 0,                       \
      "PEM private key of strata.admin.tls.cert.file (encrypted: ssl.key.password).")              \
    X(ADMIN_TLS_TRUSTSTORE_FILE, "strata.admin.tls.truststore.file", CFG_STR, "", 0, 0, 0,         \
      "PEM CA certificates that admin clients' certificates must chain to.")                       \
    X(ADMIN_TLS_CLIENT_AUTH, "strata.admin.tls.client.auth", CFG_STR, "none", 0, 0, 0,             \
      "Admin API client certificates: none, requested or required.")                               \
    X(ADMIN_TOKEN_FILE, "strata.admin.token.file", CFG_STR, "", 0, 0, 0,                           \
      "File holding the bearer token the admin HTTP API requires; empty = no authentication.")     \
    X(ADMIN_REQUIRE_AUTH, "strata.admin.require.auth", CFG_BOOL, "false", 0, 1, 0,                 \
      "Admin HTTP API requires HTTP Basic credentials of a SCRAM user (or the bearer token).")     \
    X(ADMIN_METRICS_OPEN, "strata.admin.metrics.open", CFG_BOOL, "false", 0, 1, 0,                 \
      "GET /metrics needs no authentication even when the admin API requires it.")                 \
    X(SASL_MECHANISMS, "sasl.enabled.mechanisms", CFG_STR, "SCRAM-SHA-256,SCRAM-SHA-512", 0, 0, 0, \
      "SASL mechanisms offered on SASL_* listeners: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512.")         \
    X(REAUTH_MS, "connections.max.reauth.ms", CFG_INT, "0", 0, INT64_MAX, 0,                       \
      "SASL session lifetime: a connection must re-authenticate within it or is closed (0: "       \
      "never).")                                                                                   \
    X(SMP, "strata.smp", CFG_INT, "0", 0, 1024, 0,                                                 \
      "Shards (threads with one event loop each); 0 = one per core.")                              \
    X(QUEUE_CAPACITY, "strata.shard.queue.capacity", CFG_INT, "4096", 16, 1048576, 0,              \
      "Messages a shard's cross-shard queue holds before senders see back-pressure.")              \
    X(REMOTE_SYSTEM_ENABLE, "remote.log.storage.system.enable", CFG_BOOL, "false", 0, 1, 0,        \
      "Upload sealed segments of topics without their own remote.storage.enable.")                 \
    X(ARCHIVE_URL, "strata.archive.url", CFG_STR, "", 0, 0, 0,                                     \
      "Object store for sealed segments: file://DIR or s3://BUCKET/PREFIX (default "               \
      "file://<log.dir>/archive; PREFIX at most 600 bytes: keys stay within S3's 1024).")          \
    X(ARCHIVE_UPLOAD_INTERVAL_MS, "strata.archive.max.upload.interval.ms", CFG_INT, "600000", 0,   \
      INT64_MAX, 0,                                                                                \
      "Upload the active segment's durable records once the oldest not archived is this old, "     \
      "before it rolls: losing the whole disk loses at most this window (0 = sealed segments "     \
      "only). "                                                                                    \
      "10 min: a short window for the only other copy, at most 6 more objects an hour per busy "   \
      "partition (Redpanda's 1 h default keeps replicas too).")                                    \
    X(CACHE_BYTES, "strata.cache.bytes", CFG_INT, "1073741824", 0, INT64_MAX, 0,                   \
      "Bytes of archived chunks kept under <log.dir>/cache/ for replays (LRU, split between "      \
      "shards; 0 = none).")                                                                        \
    X(HYDRATION_THREADS, "strata.hydration.threads", CFG_INT, "2", 0, 64, 0,                       \
      "Worker threads verifying, decoding and caching archived chunks for replays, apart from "    \
      "uploads (0 = libuv's shared pool).")                                                        \
    X(HYDRATION_NICE, "strata.hydration.nice", CFG_INT, "10", 0, 19, 0,                            \
      "Added to the broker's nice value for the hydration threads: a replay's chunk work yields "  \
      "the CPU to the shard loops and the flusher serving produce, and still uses it when they "   \
      "are idle (0 = same priority; needs strata.hydration.threads > 0).")                         \
    X(HYDRATION_IO_IDLE, "strata.hydration.io.idle", CFG_BOOL, "true", 0, 1, 0,                    \
      "Hydration threads' own disk I/O (chunk cache reads, writes, removals) in the idle I/O "     \
      "class (ioprio_set): produce's fdatasyncs go first on schedulers that honour classes "       \
      "(mq-deadline, BFQ); the cache is disposable.")                                              \
    X(SCHED_SLICE_US, "strata.sched.slice.us", CFG_INT, "100", 0, 100000, 0,                       \
      "CPU time slice (microseconds, 100 .. 100000) asked for the shard loops and the log's "      \
      "writer and flusher (Linux 6.12+ EEVDF, sched_setattr; no privilege needed; older kernels "  \
      "ignore it): shorter than other tasks' default (1.4 ms on 2 cores), they preempt them when " \
      "they wake, so a produce's hops do not wait for a replay, the S3 client or other processes " \
      "to use up their slice on busy cores; the CPU share is unchanged (0 = the kernel's "         \
      "default).")                                                                                 \
    X(UPLOAD_THREADS, "strata.upload.threads", CFG_INT, "2", 0, 64, 0,                             \
      "Worker threads compressing segments for upload, apart from replays (0 = libuv's shared "    \
      "pool).")                                                                                    \
    X(DISK_ALERT_BYTES, "strata.disk.alert.free.bytes", CFG_INT, "0", 0, INT64_MAX, 0,             \
      "Warn (log and strata_disk_space_low) when the data directory's filesystem has fewer free "  \
      "bytes (0 = off).")                                                                          \
    X(DISK_ALERT_PERCENT, "strata.disk.alert.free.percent", CFG_INT, "5", 0, 100, 0,               \
      "Warn when free space falls under this percent of the filesystem (0 = off); the larger "     \
      "threshold wins.")                                                                           \
    X(LOG_LEVEL, "strata.log.level", CFG_STR, "info", 0, 0, 1,                                     \
      "error, warn, info, debug or trace.")                                                        \
    X(SEGMENT_BYTES, "log.segment.bytes", CFG_INT, "1073741824", 14, INT32_MAX, 1,                 \
      "Roll the active segment when it would exceed this size.")                                   \
    X(ROLL_MS, "log.roll.ms", CFG_INT, "604800000", 1, INT64_MAX, 1,                               \
      "Roll the active segment when it is older than this.")                                       \
    X(RETENTION_MS, "log.retention.ms", CFG_INT, "604800000", -1, INT64_MAX, 1,                    \
      "Delete segments whose newest record is older (-1: keep forever).")                          \
    X(RETENTION_BYTES, "log.retention.bytes", CFG_INT, "-1", -1, INT64_MAX, 1,                     \
      "Delete oldest segments while a partition is larger (-1: no limit).")                        \
    X(INDEX_INTERVAL, "log.index.interval.bytes", CFG_INT, "4096", 0, INT32_MAX, 1,                \
      "Bytes between two sparse offset index entries.")                                            \
    X(WRITE_CACHING, "strata.write.caching.default", CFG_BOOL, "false", 0, 1, 0,                   \
      "Default of the topic key write.caching: acknowledge acks=all writes from the page cache "   \
      "and sync them by flush.ms/flush.bytes/flush.messages (Redpanda's write caching).")          \
    X(FLUSH_MS, "log.flush.interval.ms", CFG_INT, "100", 0, INT64_MAX, 0,                          \
      "Default of flush.ms: with write caching, longest time written data stays unsynced.")        \
    X(FLUSH_BYTES, "strata.log.flush.interval.bytes", CFG_INT, "262144", 1, INT64_MAX, 0,          \
      "Default of flush.bytes: with write caching, sync once this many bytes are unsynced.")       \
    X(FLUSH_MESSAGES, "log.flush.interval.messages", CFG_INT, "9223372036854775807", 1, INT64_MAX, \
      0,                                                                                           \
      "Default of flush.messages: with write caching, sync once this many records are unsynced.")  \
    X(RETENTION_CHECK_MS, "log.retention.check.interval.ms", CFG_INT, "300000", 1, INT64_MAX, 0,   \
      "How often retention and segment.ms rolls are checked.")                                     \
    X(CLEANUP_POLICY, "log.cleanup.policy", CFG_STR, "delete", 0, 0, 0,                            \
      "Default of cleanup.policy: delete, compact or compact,delete.")                             \
    X(CLEANER_MIN_RATIO, "log.cleaner.min.cleanable.ratio", CFG_STR, "0.5", 0, 0, 0,               \
      "Default of min.cleanable.dirty.ratio: dirty share of a compacted log (0..1) above which "   \
      "the cleaner runs.")                                                                         \
    X(CLEANER_MIN_LAG_MS, "log.cleaner.min.compaction.lag.ms", CFG_INT, "0", 0, INT64_MAX, 0,      \
      "Default of min.compaction.lag.ms: records younger than this are never compacted.")          \
    X(CLEANER_MAX_LAG_MS, "log.cleaner.max.compaction.lag.ms", CFG_INT, "9223372036854775807", 1,  \
      INT64_MAX, 0,                                                                                \
      "Default of max.compaction.lag.ms: a log is cleaned whatever its dirty ratio once a dirty "  \
      "record is older; the active segment of a compacted log rolls at this age when it is "       \
      "shorter than segment.ms.")                                                                  \
    X(CLEANER_DELETE_RETENTION_MS, "log.cleaner.delete.retention.ms", CFG_INT, "86400000", 0,      \
      INT64_MAX, 0,                                                                                \
      "Default of delete.retention.ms: how long a tombstone (null value) survives compaction, by " \
      "its timestamp.")                                                                            \
    X(CLEANER_DEDUPE_BUFFER, "log.cleaner.dedupe.buffer.size", CFG_INT, "134217728", 65536,        \
      INT64_MAX, 0,                                                                                \
      "Memory of the cleaners' offset maps, shared by the shards (each has a cleaner thread, and " \
      "an archive cleaner for compacted topics with remote storage, whose map of the same size "   \
      "lives during a pass): 24 bytes per distinct key of a pass; a log with more dirty keys is "  \
      "cleaned in several passes.")                                                                \
    X(CLEANER_IO_MAX_BPS, "log.cleaner.io.max.bytes.per.second", CFG_INT, "9223372036854775807",   \
      1, INT64_MAX, 0,                                                                             \
      "Bytes per second each cleaner of a shard (the local one, and the archive one: object "      \
      "bytes) reads plus writes, at most.")                                                        \
    X(CLEANER_BACKOFF_MS, "log.cleaner.backoff.ms", CFG_INT, "15000", 0, INT64_MAX, 0,             \
      "How often each shard looks for a compacted log to clean when none was dirty enough, and "   \
      "offers a compacted remote partition to its archive cleaner.")                               \
    X(MESSAGE_MAX_BYTES, "message.max.bytes", CFG_INT, "1048588", 0, INT32_MAX, 1,                 \
      "Largest record batch accepted.")                                                            \
    X(FETCH_MAX_BYTES, "fetch.max.bytes", CFG_INT, "57671680", 1024, INT32_MAX, 0,                 \
      "Largest Fetch response: caps a request's max_bytes (the first batch is returned whole).")   \
    X(FETCH_SENDFILE, "strata.fetch.sendfile.enable", CFG_BOOL, "true", 0, 1, 0,                   \
      "Send Fetch records straight from the segment files with sendfile(2) on listeners without "  \
      "TLS (no copy through user space); false: read them into memory, as TLS listeners do.")      \
    X(SOCKET_SEND_BUFFER, "socket.send.buffer.bytes", CFG_INT, "-1", -1, INT32_MAX / 2, 0,         \
      "SO_SNDBUF of each accepted Kafka connection (Linux doubles it); -1 or 0: the OS default, "  \
      "auto-tuned up to net.ipv4.tcp_wmem's maximum. Kafka's default is 102400; Strata keeps "     \
      "the OS's, with which 8-partition Fetches on an idle loopback went out 1.5x faster, "        \
      "while 102400 was faster on a loaded machine (bench/REPORT.md).")                            \
    X(REQUEST_MAX_BYTES, "socket.request.max.bytes", CFG_INT, "104857600", 1, INT32_MAX, 0,        \
      "Largest request frame accepted.")                                                           \
    X(IDLE_MS, "connections.max.idle.ms", CFG_INT, "600000", -1, INT64_MAX, 0,                     \
      "Close connections idle for longer (-1: never).")                                            \
    X(REQUEST_READ_TIMEOUT_MS, "strata.request.read.timeout.ms", CFG_INT, "30000", -1, INT64_MAX,  \
      0,                                                                                           \
      "Close a connection whose request has not arrived whole this long after its first byte "     \
      "(-1: never). Strata-only: Kafka has no such key, and its idle timer restarts on every "     \
      "byte.")                                                                                     \
    X(QUEUED_MAX_REQUEST_BYTES, "queued.max.request.bytes", CFG_INT, "536870912", -1, INT64_MAX,   \
      0,                                                                                           \
      "Bytes of requests read but not yet answered, broker-wide (frames, decoded requests, their " \
      "responses); reading pauses while full (-1: no limit, Kafka's default).")                    \
    X(MAX_CONNECTIONS, "max.connections", CFG_INT, "10000", 1, INT32_MAX, 0,                       \
      "Open Kafka connections, broker-wide; a new connection beyond it is closed at once.")        \
    X(MAX_CONNECTIONS_PER_IP, "max.connections.per.ip", CFG_INT, "1000", 1, INT32_MAX, 0,          \
      "Open Kafka connections from one IP address; a new one beyond it is closed at once.")        \
    X(NUM_PARTITIONS, "num.partitions", CFG_INT, "1", 1, 1000000, 1,                               \
      "Partitions of an automatically created topic.")                                             \
    X(MAX_PARTITIONS, "strata.max.partitions", CFG_INT, "0", 0, INT32_MAX, 1,                      \
      "Partitions of all topics together; CreateTopics, CreatePartitions and auto-creation "       \
      "beyond it are refused (POLICY_VIOLATION). Strata-only: a partition keeps a file open per "  \
      "local segment (its .log) and costs memory, and one request could otherwise ask for "        \
      "millions. 0 (the default) derives it from the open file limit N (stratad raises the soft "  \
      "RLIMIT_NOFILE to the hard one at start): min(100000, max(1, (N - max(256, N / 4)) / 2)), "  \
      "2 descriptors a partition (its active segment and one sealed) after a quarter of them (at " \
      "least 256) for connections and the rest; the value is logged at start.")                    \
    X(AUTO_CREATE, "auto.create.topics.enable", CFG_BOOL, "true", 0, 1, 1,                         \
      "Create a topic when a client produces to or asks for an unknown one.")                      \
    X(OFFSETS_RETENTION_MIN, "offsets.retention.minutes", CFG_INT, "10080", 1, INT32_MAX, 0,       \
      "Committed offsets of a group expire this long after the group became empty.")               \
    X(GROUP_MIN_SESSION_MS, "group.min.session.timeout.ms", CFG_INT, "6000", 1, INT32_MAX, 0,      \
      "Smallest session timeout a group member may ask for.")                                      \
    X(GROUP_MAX_SESSION_MS, "group.max.session.timeout.ms", CFG_INT, "1800000", 1, INT32_MAX, 0,   \
      "Largest session timeout a group member may ask for.")                                       \
    X(GROUP_INITIAL_DELAY_MS, "group.initial.rebalance.delay.ms", CFG_INT, "3000", 0, INT32_MAX,   \
      0, "How long the first rebalance of an empty group waits for more members to join.")         \
    X(GROUP_CONS_SESSION_MS, "group.consumer.session.timeout.ms", CFG_INT, "45000", 1, INT32_MAX,  \
      0,                                                                                           \
      "A consumer-protocol (KIP-848) member that sent no heartbeat for this long leaves its "      \
      "group.")                                                                                    \
    X(GROUP_CONS_HB_MS, "group.consumer.heartbeat.interval.ms", CFG_INT, "5000", 1, INT32_MAX, 0,  \
      "How often consumer-protocol (KIP-848) members heartbeat (sent to them in every heartbeat "  \
      "answer).")                                                                                  \
    X(GROUP_CONS_ASSIGNORS, "group.consumer.assignors", CFG_STR, "uniform,range", 0, 0, 0,         \
      "Server-side assignors of consumer-protocol (KIP-848) groups, comma-separated (uniform, "    \
      "range); the first is the default.")                                                         \
    X(TXN_MAX_TIMEOUT_MS, "transaction.max.timeout.ms", CFG_INT, "900000", 1, INT32_MAX, 0,        \
      "Largest transaction.timeout.ms a transactional producer may ask for "                       \
      "(INVALID_TRANSACTION_TIMEOUT beyond it).")                                                  \
    X(TXN_CHECK_INTERVAL_MS, "transaction.abort.timed.out.transaction.cleanup.interval.ms",        \
      CFG_INT, "10000", 1, INT32_MAX, 0,                                                           \
      "How often the transaction coordinator aborts transactions open past their timeout, and "    \
      "retries unfinished commits and aborts.")                                                    \
    X(TXN_ID_EXPIRATION_MS, "transactional.id.expiration.ms", CFG_INT, "604800000", 1, INT32_MAX,  \
      0,                                                                                           \
      "A transactional id with no open transaction is forgotten (its producer id and epoch with "  \
      "it) when it saw no change for this long.")                                                  \
    X(TXN_SNAPSHOT_BYTES, "strata.transaction.state.snapshot.bytes", CFG_INT, "67108864", 0,       \
      INT64_MAX, 0,                                                                                \
      "A partition's transaction state (open transactions, aborted list) is saved about every "    \
      "this many bytes of log, so a restart rebuilds it from the last save and the log after it; " \
      "0: never saved (the whole local log is read).")                                             \
    X(AUTHORIZER, "authorizer.class.name", CFG_STR, "", 0, 0, 0,                                   \
      "Any non-empty value turns ACL authorization on (Kafka's StandardAuthorizer semantics); "    \
      "also on when a listener is SASL_* or mTLS.")                                                \
    X(SUPER_USERS, "super.users", CFG_STR, "", 0, 0, 0,                                            \
      "Principals allowed every operation, separated by ';' (User:admin;User:ops).")               \
    X(ALLOW_NO_ACL, "allow.everyone.if.no.acl.found", CFG_BOOL, "false", 0, 1, 0,                  \
      "With authorization on: allow a resource that no ACL names (false: deny it, as Kafka).")

/* Keys whose values are secrets (besides every key ending in ".password"):
 * DescribeConfigs reports them as sensitive with a null value, as Kafka does,
 * and /v1/cluster/config shows null; they are never logged. */
#define CFG_SENSITIVE_KEYS "ssl.keystore.key", "sasl.jaas.config", "strata.archive.secret.key"

/* Kafka keys that exist upstream but have no meaning here: accepted with one
 * warning, so an existing server.properties still starts. */
#define CFG_IGNORED_KAFKA_KEYS                                                                     \
    "broker.id", "num.network.threads", "num.io.threads", "socket.receive.buffer.bytes",           \
        "zookeeper.connect", "zookeeper.connection.timeout.ms",                                    \
        "num.recovery.threads.per.data.dir", "offsets.topic.replication.factor",                   \
        "transaction.state.log.replication.factor", "transaction.state.log.min.isr", "log.dirs"
