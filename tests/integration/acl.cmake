# ACL authorization with real clients (tests/integration/test_acl.py).
add_test(NAME kafka_acl COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_acl.py)
set_tests_properties(kafka_acl PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
# `strata security acl|user` and the CLI's TLS/SASL settings (tests/integration/test_cli_security.py).
if(TARGET strata)
    add_test(NAME strata_cli_security COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_cli_security.py)
    set_tests_properties(strata_cli_security PROPERTIES LABELS integration TIMEOUT 300
        ENVIRONMENT "STRATA=$<TARGET_FILE:strata>;STRATAD=$<TARGET_FILE:stratad>")
endif()
