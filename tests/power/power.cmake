# Power cuts of a real stratad on holdfs, a FUSE filesystem that holds writes until fsync
# (Debian: libfuse3-dev to build it, fuse3 for fusermount3; root or CAP_SYS_ADMIN to mount).
pkg_check_modules(FUSE3 IMPORTED_TARGET fuse3)
if(FUSE3_FOUND)
    add_executable(holdfs power/holdfs.c)
    target_link_libraries(holdfs PRIVATE PkgConfig::FUSE3)
    add_test(NAME power_cut COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_power.py)
    set_tests_properties(power_cut PROPERTIES LABELS integration TIMEOUT 600
        ENVIRONMENT "STRATAD=$<TARGET_FILE:stratad>;HOLDFS=$<TARGET_FILE:holdfs>")
else()
    message(WARNING "fuse3 not found: the power-cut test is not built (apt-get install libfuse3-dev fuse3)")
endif()
