# Broker-wide connection and memory limits of the Kafka server (kafka/kh_limits.c).
st_unit_test(kh_limits_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/kh_limits_test.c LIBS strata_kafka)
