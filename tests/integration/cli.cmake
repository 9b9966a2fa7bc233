# The strata CLI against a real stratad: every command, its output and exit codes.
if(TARGET strata)
    add_test(NAME strata_cli COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_cli.py)
    set_tests_properties(strata_cli PROPERTIES LABELS integration TIMEOUT 600
        ENVIRONMENT "STRATA=$<TARGET_FILE:strata>;STRATAD=$<TARGET_FILE:stratad>")
endif()
