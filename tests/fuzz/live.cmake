# Live fuzzing of stratad (tests/fuzz/live_fuzz.c, driven by tests/fuzz/live.sh): requests of
# every served API and version from the generated codec, shaped and mutated, over many
# connections at once. live_fuzz runs a bounded seeded run (label integration); scripts/test.sh
# runs it again against the ASan+UBSan stratad. tests/fuzz/run.sh live SECONDS runs it longer.
add_executable(live_fuzz ${CMAKE_CURRENT_LIST_DIR}/live_fuzz.c ${CMAKE_SOURCE_DIR}/tests/unit/kp_fill.c)
target_link_libraries(live_fuzz PRIVATE strata_kafka strata_tsupport PkgConfig::ZLIB PkgConfig::ZSTD m)
add_test(NAME live_fuzz
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/live.sh $<TARGET_FILE:stratad> $<TARGET_FILE:live_fuzz>
        --requests 100000 --seconds 30 --conns 16
        --regress ${CMAKE_CURRENT_LIST_DIR}/live_regress.txt)
set_tests_properties(live_fuzz PROPERTIES LABELS integration TIMEOUT 300)
# The same with the SASL connections over TLS to a SASL_SSL listener (through socat).
add_test(NAME live_fuzz_tls
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/live.sh $<TARGET_FILE:stratad> $<TARGET_FILE:live_fuzz>
        --requests 50000 --seconds 15 --conns 16
        --regress ${CMAKE_CURRENT_LIST_DIR}/live_regress.txt)
set_tests_properties(live_fuzz_tls PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT LIVE_SASL_TLS=1)
# Cross-shard posts through a full shard queue (on_retry), found by the live fuzzer.
add_test(NAME retry_queue COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_retry_queue.py)
set_tests_properties(retry_queue PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
