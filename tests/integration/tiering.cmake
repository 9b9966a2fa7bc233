# Integration tests of tiered storage: real broker, file:// and a real S3 server.
add_test(NAME tiering_upload COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_tiering.py)
set_tests_properties(tiering_upload PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
# The issue's sizes: 1 GiB through 8 MiB segments with 32 MiB kept locally,
# replayed from file:// and from the S3 server, then recovered from the bucket.
add_test(NAME tiering_replay_gib COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_replay_gib.py)
set_tests_properties(tiering_replay_gib PROPERTIES LABELS integration TIMEOUT 2400
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
# Issue 15: the active segment is archived after strata.archive.max.upload.interval.ms (the
# loss window when the whole disk is gone: file:// and the S3 server), and a local log behind
# the archive continues after it at start.
add_test(NAME tiering_window COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_archive_window.py)
set_tests_properties(tiering_window PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
# Issue 14: a 249-character topic (Kafka's longest name) is archived on file://, listed and read
# by `strata archive`, and recovered from the archive with its configs.
add_test(NAME tiering_long_names COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_archive_names.py)
set_tests_properties(tiering_long_names PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "STRATA=$<TARGET_FILE:strata>;STRATAD=$<TARGET_FILE:stratad>")
# Issue 20 (tiered): transactional data with aborts archived to the S3 test server and deleted
# locally; read_committed replays from the bucket (and `strata archive cat --read-committed`)
# return exactly the committed records, also after a restart.
add_test(NAME tiering_txn COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_txn_tier.py)
set_tests_properties(tiering_txn PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "STRATA=$<TARGET_FILE:strata>;STRATAD=$<TARGET_FILE:stratad>")
