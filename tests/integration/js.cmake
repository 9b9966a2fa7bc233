# kafkajs (Node.js, its own protocol codec) against a real stratad (label integration).
# scripts/test.sh installs the pinned kafkajs into integration/js/node_modules (npm ci);
# the test itself reads back with kcat, so it needs node, npm's modules and kcat.
find_program(ST_NODE node)
if(NOT ST_NODE)
    set(ST_NODE node) # not installed: the test fails loudly rather than vanishing
endif()
add_test(NAME kafkajs_client COMMAND ${ST_NODE} --test
    WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR}/js)
set_tests_properties(kafkajs_client PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
# Transactions with kafkajs' own transaction manager (js/txn_kafkajs.js).
add_test(NAME txn_kafkajs COMMAND ${ST_NODE} --test txn_kafkajs.js
    WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR}/js)
set_tests_properties(txn_kafkajs PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
