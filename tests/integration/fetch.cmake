# Fetch budget (KIP-74 semantics, fetch.max.bytes, duplicates, rotation,
# archived reads) and the hostile many-duplicates Fetch's peak RSS, against a
# real stratad.
add_test(NAME kafka_fetch_budget COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_fetch_budget.py)
set_tests_properties(kafka_fetch_budget PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
# Zero-copy Fetch: sendfile from segment files on PLAINTEXT (a metric counts
# the bytes; 0 over TLS and when disabled), cold pages read in the thread
# pool, a topic deleted and recreated while a response is half sent, clients
# closing mid-send.
add_test(NAME kafka_fetch_sendfile COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_fetch_sendfile.py)
set_tests_properties(kafka_fetch_sendfile PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
# socket.send.buffer.bytes: SO_SNDBUF of accepted connections, read back from the kernel (ss).
add_test(NAME kafka_sndbuf COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_sndbuf.py)
set_tests_properties(kafka_sndbuf PROPERTIES LABELS integration TIMEOUT 120
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
# `strata bench fetch` (the raw Fetch load driver of bench/): exact record and batch-byte
# counts against a real stratad; cut batches, CRC mismatches, errors and hostile frames
# from a fake broker.
if(TARGET strata)
    add_test(NAME bench_fetch COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_bench_fetch.py)
    set_tests_properties(bench_fetch PROPERTIES LABELS integration TIMEOUT 300
        ENVIRONMENT "STRATA=$<TARGET_FILE:strata>;STRATAD=$<TARGET_FILE:stratad>")
endif()
