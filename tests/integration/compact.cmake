# Log compaction (issue 19): a compacted topic cleaned by the shard's cleaner,
# read back by confluent-kafka, kafka-python, kcat and kafkajs (integration/js,
# installed by scripts/test.sh), and kill -9 while a throttled cleaner runs.
add_test(NAME log_compaction COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_compact.py)
set_tests_properties(log_compaction PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")

# Compaction of archived data (issue 19): a compacted topic with remote
# storage on the S3 test server, its local segments deleted, is compacted in
# the bucket and replayed from offset 0 by confluent-kafka, kafka-python and
# kcat; kill -9 at the moments of an archive pass that matter (zstd for the
# object check is in scripts/deps.sh).
add_test(NAME archive_compaction COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_compact_archive.py)
set_tests_properties(archive_compaction PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
