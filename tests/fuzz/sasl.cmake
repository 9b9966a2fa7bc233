# Fuzzing of the SASL message parsers (core/st_scram.c: SCRAM client-first/final, PLAIN,
# base64): the libFuzzer target with a plain main() (kp_fuzz_main.c) over the committed seed
# corpus and its deterministic mutations; under ASan in the ASan build.
add_executable(sasl_fuzz_corpus
    ${CMAKE_CURRENT_LIST_DIR}/sasl_fuzz.c ${CMAKE_CURRENT_LIST_DIR}/kp_fuzz_main.c)
target_link_libraries(sasl_fuzz_corpus PRIVATE strata_core)
add_test(NAME sasl_fuzz_corpus
    COMMAND sasl_fuzz_corpus ${CMAKE_CURRENT_LIST_DIR}/corpus/sasl)
set_tests_properties(sasl_fuzz_corpus PROPERTIES LABELS unit TIMEOUT 120)

# A short libFuzzer run (clang -fsanitize=fuzzer,address,undefined), skipped without clang.
find_program(ST_CLANG_SASL clang)
if(ST_CLANG_SASL)
    add_test(NAME sasl_libfuzzer
        COMMAND sh -c "mkdir -p \"$1/corpus\" && \"$0\" -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -I\"$2\" \"$2/core/st_scram.c\" \"$2/tests/fuzz/sasl_fuzz.c\" -lcrypto -o \"$1/sasl_fuzz\" 2>/dev/null || exit 77; cd \"$1\" && exec ./sasl_fuzz -max_total_time=15 -max_len=4096 \"$1/corpus\" \"$2/tests/fuzz/corpus/sasl\""
            ${ST_CLANG_SASL} ${CMAKE_BINARY_DIR}/fuzz-sasl ${CMAKE_SOURCE_DIR})
    set_tests_properties(sasl_libfuzzer PROPERTIES LABELS unit TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()
