# A transaction coordinator's durable state: encoding, copies (kafka/kh_txn_state.c).
st_unit_test(kh_txn_state_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/kh_txn_state_test.c LIBS strata_kafka)
