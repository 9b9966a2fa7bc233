# Object store S3 backend through a fault-injecting proxy (faultproxy.py) in
# front of the local S3 server. Labels: integration (run by scripts/test.sh), fault.
if(TARGET PkgConfig::CMOCKA)
    add_executable(obj_fault_test ${CMAKE_CURRENT_LIST_DIR}/obj_fault_test.c)
    target_link_libraries(obj_fault_test PRIVATE strata_tiering PkgConfig::CMOCKA)
    target_compile_definitions(obj_fault_test PRIVATE STRATA_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
    add_test(NAME obj_fault_test COMMAND obj_fault_test)
    set_tests_properties(obj_fault_test PROPERTIES LABELS "integration;fault" TIMEOUT 300)
endif()
