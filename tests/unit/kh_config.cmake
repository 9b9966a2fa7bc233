# Topic config rules of the Kafka handlers (kafka/kh_config.c).
st_unit_test(kh_config_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/kh_config_test.c LIBS strata_kafka)
