# Group coordinator state machine (kafka/grp.c), driven with injected clocks.
st_unit_test(grp_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/grp_test.c
    LIBS strata_kafka)

# KIP-848 consumer protocol (kafka/grp_cons.c): epochs, revocation, assignors, timeouts.
st_unit_test(grp_cons_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/grp_cons_test.c
    LIBS strata_kafka)
