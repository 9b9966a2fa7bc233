# Security integration tests: listeners, TLS (test certificates are made at
# test time with the openssl CLI).
add_test(NAME tls COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_tls.py)
set_tests_properties(tls PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
