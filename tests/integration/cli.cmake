# The strata CLI against a real stratad: every command, its output and exit codes.
if(TARGET strata)
    add_test(NAME strata_cli COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_cli.py)
    # strata_cli holds the default Kafka port (9092) to test a busy port; stratad_process
    # starts brokers on the defaults (9092, admin 9644): never at the same time.
    set_tests_properties(strata_cli PROPERTIES LABELS integration TIMEOUT 600 RESOURCE_LOCK default_ports
        ENVIRONMENT "STRATA=$<TARGET_FILE:strata>;STRATAD=$<TARGET_FILE:stratad>")
endif()
