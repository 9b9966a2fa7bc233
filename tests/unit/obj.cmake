# Object store (tiering/obj): SigV4 vectors and the file:// backend.
st_unit_test(obj_sigv4_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/obj_sigv4_test.c
             LIBS strata_tiering)
st_unit_test(obj_file_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/obj_file_test.c
             LIBS strata_tiering)
