# ACL authorization with real clients (tests/integration/test_acl.py).
add_test(NAME kafka_acl COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_acl.py)
set_tests_properties(kafka_acl PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
