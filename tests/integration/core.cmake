# Integration tests of core/: real processes, real files, real signals.
add_executable(crash_test integration/crash_test.c)
target_link_libraries(crash_test PRIVATE strata_core strata_tsupport)
add_test(NAME crash_kill9 COMMAND crash_test 25)
set_tests_properties(crash_kill9 PROPERTIES LABELS integration TIMEOUT 300)
add_test(NAME stratad_process COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_stratad.py)
set_tests_properties(stratad_process PROPERTIES LABELS integration TIMEOUT 300 RESOURCE_LOCK default_ports
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>;CRASH_TEST=$<TARGET_FILE:crash_test>")
add_test(NAME kafka_clients COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_kafka.py)
set_tests_properties(kafka_clients PROPERTIES LABELS integration TIMEOUT 900
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
add_test(NAME kafka_hostile COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_hostile.py)
set_tests_properties(kafka_hostile PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
add_test(NAME fd_limits COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_fd_limits.py)
set_tests_properties(fd_limits PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
add_test(NAME kafka_idempotence COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_idempotence.py)
set_tests_properties(kafka_idempotence PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
# docs/config.md is generated from the key table; fail when it is stale.
add_test(NAME config_docs_fresh COMMAND sh -c "$<TARGET_FILE:stratad> --help-config | diff -u ${CMAKE_SOURCE_DIR}/docs/config.md - && echo docs/config.md is up to date")
set_tests_properties(config_docs_fresh PROPERTIES LABELS integration)
add_test(NAME tiering_timestamps COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_tiering_time.py)
set_tests_properties(tiering_timestamps PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
add_test(NAME write_caching COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_write_caching.py)
set_tests_properties(write_caching PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
add_test(NAME kafka_txn COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_txn.py)
set_tests_properties(kafka_txn PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
# A partition's transaction state across restarts (snapshot + tail, torn snapshot), aborted list pruning.
add_test(NAME kafka_txn_state COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_txn_state.py)
set_tests_properties(kafka_txn_state PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
# Raw frames: batched AddPartitionsToTxn v4+ (verify-only), TxnOffsetCommit v3+ membership checks.
add_test(NAME kafka_txn_wire COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_txn_wire.py)
set_tests_properties(kafka_txn_wire PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
