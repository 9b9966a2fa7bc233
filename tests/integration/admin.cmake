# Admin HTTP API over real HTTP against a real stratad (admin/, core/st_metrics).
add_test(NAME admin_http COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_admin.py)
set_tests_properties(admin_http PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>")
