# Topic and broker configuration over the Kafka API (DescribeConfigs,
# AlterConfigs, IncrementalAlterConfigs, CreateTopics configs,
# CreatePartitions) against a real stratad.
add_test(NAME kafka_configs COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_configs.py)
set_tests_properties(kafka_configs PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
