# Unit tests of admin/ (HTTP parser) and of the metrics registry it renders (core/st_metrics).
st_unit_test(admin_test SOURCES unit/admin_test.c LIBS strata_admin)
