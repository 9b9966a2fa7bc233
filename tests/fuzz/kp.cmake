# Fuzzing of the Kafka codec (kafka/kp*).
# kp_decode_fuzz_corpus: the libFuzzer target with a plain main() (kp_fuzz_main.c), run in the
#   normal build over the committed seed corpus and simple mutations of it.
# kp_decode_libfuzzer: builds the target with clang -fsanitize=fuzzer,address,undefined
#   (tests/fuzz/run.sh) into its own directory and fuzzes for 20 s; skipped without clang.
# kp_corpus_gen (not built by default): rewrites the seed corpus, see README.
add_executable(kp_decode_fuzz_corpus
    ${CMAKE_CURRENT_LIST_DIR}/kp_decode_fuzz.c ${CMAKE_CURRENT_LIST_DIR}/kp_fuzz_main.c)
target_link_libraries(kp_decode_fuzz_corpus PRIVATE strata_kafka)
add_test(NAME kp_decode_fuzz_corpus
    COMMAND kp_decode_fuzz_corpus ${CMAKE_CURRENT_LIST_DIR}/corpus/kp)
set_tests_properties(kp_decode_fuzz_corpus PROPERTIES LABELS unit TIMEOUT 120)

add_executable(kp_corpus_gen EXCLUDE_FROM_ALL
    ${CMAKE_CURRENT_LIST_DIR}/kp_corpus_gen.c ${CMAKE_SOURCE_DIR}/tests/unit/kp_fill.c)
target_link_libraries(kp_corpus_gen PRIVATE strata_kafka)

find_program(ST_CLANG clang)
if(ST_CLANG)
    add_test(NAME kp_decode_libfuzzer
        COMMAND ${CMAKE_CURRENT_LIST_DIR}/run.sh 20 ${CMAKE_BINARY_DIR}/fuzz-kp)
    set_tests_properties(kp_decode_libfuzzer PROPERTIES
        LABELS unit TIMEOUT 600 SKIP_RETURN_CODE 77 ENVIRONMENT CLANG=${ST_CLANG})
endif()
