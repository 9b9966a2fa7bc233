# Consumer groups against a real stratad (label integration): confluent-kafka and kafka-python
# groups, failover, durable commits across SIGTERM and kill -9, static members, admin APIs and
# raw bad input (test_groups.py); kafkajs groups and admin (js/groups_kafkajs.js).
add_test(NAME groups_clients COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_groups.py)
set_tests_properties(groups_clients PROPERTIES LABELS integration TIMEOUT 900
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>;GRP_VERSIONS=$<TARGET_FILE:grp_versions>")
find_program(ST_GROUPS_NODE node)
if(NOT ST_GROUPS_NODE)
    set(ST_GROUPS_NODE node) # not installed: the test fails loudly rather than vanishing
endif()
add_test(NAME groups_kafkajs COMMAND ${ST_GROUPS_NODE} --test groups_kafkajs.js
    WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR}/js)
set_tests_properties(groups_kafkajs PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
# Every advertised version of every group API, encoded with the generated codec
# (driven by test_groups.py against its broker).
add_executable(grp_versions integration/grp_versions.c)
target_link_libraries(grp_versions PRIVATE strata_kafka)
# KIP-848 consumer group protocol with librdkafka 2.x (PyPI confluent-kafka 2.16.1 in a cache
# directory, installed by scripts/deps.sh test): share, join, leave, crash, no record twice.
add_test(NAME groups_kip848 COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_kip848.py)
set_tests_properties(groups_kip848 PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
