# Uploads check every batch's CRC-32C: local bit rot is reported, never archived.
add_test(NAME tiering_upload_crc COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_upload_crc.py)
set_tests_properties(tiering_upload_crc PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
