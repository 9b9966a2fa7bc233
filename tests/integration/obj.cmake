# Object store S3 backend against a real S3 server on loopback (label integration).
# scripts/test.sh exports STRATA_TEST_S3_URL; without it the test starts its own
# server with scripts/s3server.sh.
if(TARGET PkgConfig::CMOCKA)
    add_executable(obj_s3_test ${CMAKE_CURRENT_LIST_DIR}/obj_s3_test.c)
    target_link_libraries(obj_s3_test PRIVATE strata_tiering PkgConfig::CMOCKA)
    target_compile_definitions(obj_s3_test PRIVATE STRATA_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
    add_test(NAME obj_s3_test COMMAND obj_s3_test)
    set_tests_properties(obj_s3_test PROPERTIES LABELS integration TIMEOUT 300)
endif()
