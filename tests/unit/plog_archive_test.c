/* plog_archive_test.c - unit tests of what the log engine gives tiering:
 * durable ranges of sealed and active segments to archive
 * (plog_archive_get) and the reset of a log behind the archive (plog_reset). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/plog.h"
#include "tests/support/tbatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    uv_loop_t loop;
    plog_env_t *env;
    plog_shard_t *sh;
    char dir[256];
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(plog_env_new(&f->env), 0);
    assert_int_equal(plog_shard_new(f->env, &f->loop, &f->sh), 0);
    char tmpl[] = "/tmp/plog_archive_test.XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    snprintf(f->dir, sizeof(f->dir), "%s/orders-0", tmpl);
    *state = f;
    return 0;
}

static void on_flag(void *arg)
{
    *(int *)arg = 1;
}

static void close_log(fx_t *f, plog_t *log)
{
    int closed = 0;
    plog_close(log, on_flag, &closed);
    while (!closed)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    plog_shard_free(f->sh);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    plog_env_free(f->env);
    char cmd[600];
    *strrchr(f->dir, '/') = 0;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static plog_t *open_log(fx_t *f, const plog_config_t *cfg)
{
    plog_t *log = NULL;
    char err[256] = "";
    int rc = plog_open(f->sh, f->dir, cfg, 1000, &log, err, sizeof(err));
    if (rc != 0)
        fail_msg("plog_open: %s (%s)", err, st_strerror(rc));
    return log;
}

static void on_durable(void *arg, int status)
{
    assert_int_equal(status, 0);
    *(int *)arg = 1;
}

/* Append a batch of n records and wait until it is durable. */
static int64_t append_durable(fx_t *f, plog_t *log, int n, uint64_t seed)
{
    size_t len;
    uint8_t *b = tbatch_build(n, 100, seed, 5000, &len);
    plog_append_info_t info;
    assert_int_equal(plog_append(log, b, len, 0, 2000, &info, NULL), 0);
    free(b);
    plog_waiter_t w;
    int done = 0;
    plog_wait_durable(log, &w, info.end_offset, on_durable, &done);
    while (!done)
        uv_run(&f->loop, UV_RUN_ONCE);
    return info.base_offset;
}

static plog_config_t remote_cfg(void)
{
    plog_config_t cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 2000; /* about 10 batches of 2 records a segment */
    cfg.retention_ms = -1;
    cfg.remote_enabled = true;
    cfg.local_retention_bytes = 0;
    return cfg;
}

/* The active segment is archived in ranges that follow each other; its roll
 * gives the rest; local retention deletes it only once all is archived. */
static void test_archive_get_ranges(void **state)
{
    fx_t *f = *state;
    plog_config_t cfg = remote_cfg();
    plog_t *log = open_log(f, &cfg);
    for (int i = 0; i < 3; i++)
        append_durable(f, log, 2, (uint64_t)i); /* offsets 0-5 in the active segment */
    plog_seg_info_t a;
    assert_int_equal(plog_archive_get(log, 0, false, &a), ST_E_NOTFOUND); /* not sealed */
    assert_int_equal(plog_archive_get(log, 0, true, &a), 0);
    assert_false(a.is_sealed);
    assert_int_equal(a.base_offset, 0);
    assert_int_equal(a.next_offset, 6);
    assert_int_equal(a.pos, 0);
    assert_true(a.first_append_ms >= 0);
    int64_t first_size = a.size;
    plog_seg_info_release(&a);
    plog_set_uploaded(log, 6);
    assert_int_equal(plog_archive_get(log, 6, true, &a), ST_E_NOTFOUND); /* all archived */
    /* More records: the next range starts where the last one ended. */
    append_durable(f, log, 2, 3);
    append_durable(f, log, 2, 4);
    assert_int_equal(plog_archive_get(log, 6, true, &a), 0);
    assert_int_equal(a.base_offset, 6);
    assert_int_equal(a.next_offset, 10);
    assert_int_equal(a.pos, first_size);
    assert_int_equal(a.size, 2 * first_size / 3);
    plog_seg_info_release(&a);
    /* A record written but not durable is not offered. */
    size_t len;
    uint8_t *b = tbatch_build(2, 100, 5, 5000, &len);
    plog_append_info_t info;
    assert_int_equal(plog_append(log, b, len, 0, 2000, &info, NULL), 0);
    free(b);
    assert_int_equal(plog_durable_offset(log), 10);
    assert_int_equal(plog_archive_get(log, 6, true, &a), 0);
    assert_int_equal(a.next_offset, 10);
    plog_seg_info_release(&a);
    plog_set_uploaded(log, 10);
    /* Roll: the sealed segment's rest (10-11) once durable; nothing of it
     * is deleted locally before then. */
    for (int i = 6; plog_segment_count(log) < 2; i++)
        append_durable(f, log, 2, (uint64_t)i);
    int64_t sealed_end = plog_segment_base(log, 1);
    assert_int_equal(plog_tick(log, 3000), 0);
    assert_int_equal(plog_segment_count(log), 2);
    assert_int_equal(plog_archive_get(log, 10, false, &a), 0);
    assert_true(a.is_sealed);
    assert_int_equal(a.base_offset, 10);
    assert_int_equal(a.next_offset, sealed_end);
    assert_int_equal(a.pos + a.size,
                     (int64_t)5 * first_size / 3 + (sealed_end - 10) / 2 * (first_size / 3));
    plog_seg_info_release(&a);
    plog_set_uploaded(log, sealed_end);
    assert_int_equal(plog_tick(log, 3000), 1);
    assert_int_equal(plog_local_start_offset(log), sealed_end);
    close_log(f, log);
}

/* A log behind the archive continues empty after it, across a restart. */
static void test_reset(void **state)
{
    fx_t *f = *state;
    plog_config_t cfg = remote_cfg();
    plog_t *log = open_log(f, &cfg);
    for (int i = 0; i < 15; i++)
        append_durable(f, log, 2, (uint64_t)i);
    assert_true(plog_segment_count(log) > 1);
    assert_int_equal(plog_reset(log, 30), ST_E_INVAL); /* not above the end */
    assert_int_equal(plog_reset(log, 100), 0);
    assert_int_equal(plog_segment_count(log), 1);
    assert_int_equal(plog_start_offset(log), 100);
    assert_int_equal(plog_end_offset(log), 100);
    assert_int_equal(plog_durable_offset(log), 100);
    assert_int_equal(plog_uploaded_offset(log), 100);
    plog_slice_t s;
    assert_int_equal(plog_read(log, 50, 100, &s), ST_E_RANGE);
    plog_set_remote_start(log, 0);
    assert_int_equal(plog_read(log, 50, 100, &s), ST_E_OFFLOADED); /* the archive serves it */
    assert_int_equal(append_durable(f, log, 2, 99), 100);
    close_log(f, log);
    log = open_log(f, &cfg);
    assert_int_equal(plog_segment_count(log), 1);
    assert_int_equal(plog_segment_base(log, 0), 100);
    assert_int_equal(plog_end_offset(log), 102);
    close_log(f, log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_archive_get_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
