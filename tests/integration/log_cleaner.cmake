# The log cleaner from outside (issue 19): its Prometheus metrics on /metrics, and a small
# compacted changelog with remote storage cleaned within max.compaction.lag.ms (the active
# segment rolls by the lag, is uploaded, then cleaned).
add_test(NAME log_cleaner COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_log_cleaner.py)
set_tests_properties(log_cleaner PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
