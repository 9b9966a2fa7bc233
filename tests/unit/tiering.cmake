# Unit tests of tiering/ building blocks: the remote object format (seg) and
# the SQLite catalog of remote data (index/idx).
st_unit_test(seg_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/seg_test.c
             LIBS strata_tiering strata_tsupport)
st_unit_test(idx_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/idx_test.c LIBS strata_index)
# The hydration chunk cache (tiering/cache.h): LRU order, bound, restart, corruption.
st_unit_test(tier_cache_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/tier_cache_test.c
             LIBS strata_tiering)
# Recovery of the remote index from a bucket alone (tiering/tier_recover.c), file:// store.
st_unit_test(tier_recover_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/tier_recover_test.c
             ${CMAKE_CURRENT_LIST_DIR}/../support/tobj.c LIBS strata_tiering strata_tsupport)
# Hydration (tiering/tier_rd.c) over a real index and the file:// store: GETs
# counted through link wraps, which also start reads at chosen points of the
# read-ahead walk (one GET per chunk however they interleave).
st_unit_test(tier_rd_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/tier_rd_test.c
             ${CMAKE_CURRENT_LIST_DIR}/../support/tobj.c LIBS strata_tiering strata_tsupport)
target_link_options(tier_rd_test PRIVATE -Wl,--wrap=idx_lookup_offset -Wl,--wrap=obj_get_range)
