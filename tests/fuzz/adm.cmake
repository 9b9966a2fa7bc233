# Fuzzing of the admin API's HTTP parser (admin/adm_http.c): the libFuzzer target with a plain
# main() (kp_fuzz_main.c) over the committed seed corpus and its deterministic mutations.
add_executable(adm_http_fuzz_corpus
    ${CMAKE_CURRENT_LIST_DIR}/adm_http_fuzz.c ${CMAKE_CURRENT_LIST_DIR}/kp_fuzz_main.c)
target_link_libraries(adm_http_fuzz_corpus PRIVATE strata_admin)
add_test(NAME adm_http_fuzz_corpus
    COMMAND adm_http_fuzz_corpus ${CMAKE_CURRENT_LIST_DIR}/corpus/adm)
set_tests_properties(adm_http_fuzz_corpus PROPERTIES LABELS unit TIMEOUT 120)
