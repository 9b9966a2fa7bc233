# Integration tests of tiered storage: real broker, file:// and a real S3 server.
add_test(NAME tiering_upload COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_tiering.py)
set_tests_properties(tiering_upload PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
