# The Java Kafka ecosystem (Java client, console tools, Kafka Streams, Kafka Connect) against a real stratad:
# tests/integration/test_java.py resolves the pinned Maven project tests/integration/java
# (cached in ~/.m2, checked against its deps.lock), starts the broker and runs its JUnit 5 tests.
# Needs java 17 and mvn (scripts/deps.sh test installs them when absent).
add_test(NAME java_clients COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_java.py)
set_tests_properties(java_clients PROPERTIES LABELS integration TIMEOUT 900
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>;JAVA_TARGET=${CMAKE_CURRENT_BINARY_DIR}/java-it")
