# Security integration tests: listeners, TLS (test certificates are made at
# test time with the openssl CLI).
add_test(NAME tls COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_tls.py)
set_tests_properties(tls PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
# SASL (PLAIN, SCRAM-SHA-256/512) with kcat, confluent-kafka, kafka-python and
# kafkajs; re-authentication; SCRAM users over the Kafka and admin APIs.
add_test(NAME sasl COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_sasl.py)
set_tests_properties(sasl PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
