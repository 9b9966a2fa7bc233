# Unit tests of core/ (runtime, config, partition log).
st_unit_test(plog_test SOURCES unit/plog_test.c LIBS strata_core strata_tsupport)
st_unit_test(plog_archive_test SOURCES unit/plog_archive_test.c LIBS strata_core strata_tsupport)
st_unit_test(rt_test SOURCES unit/rt_test.c LIBS strata_core)
st_unit_test(cfg_test SOURCES unit/cfg_test.c LIBS strata_core)
st_unit_test(codec_test SOURCES unit/codec_test.c LIBS strata_core)
st_unit_test(acl_test SOURCES unit/acl_test.c LIBS strata_core)
st_unit_test(scram_test SOURCES unit/scram_test.c LIBS strata_core)
st_unit_test(plog_crash_test SOURCES unit/plog_crash_test.c LIBS strata_core strata_tsupport)
st_unit_test(wake_test SOURCES unit/wake_test.c LIBS strata_core)
# Per-class worker pools: a held pool does not delay another (hangs, so times out, if it did).
st_unit_test(st_pool_test SOURCES unit/st_pool_test.c LIBS strata_core)
# A short EEVDF slice for the loops, the log's writer and flusher (read back with sched_getattr).
st_unit_test(st_sched_test SOURCES unit/st_sched_test.c LIBS strata_core strata_tsupport)
# Large freed buffers are reused, not faulted in again (minor fault counts).
st_unit_test(st_alloc_test SOURCES unit/st_alloc_test.c LIBS strata_core)
st_unit_test(compact_test SOURCES unit/compact_test.c LIBS strata_core strata_tsupport)
