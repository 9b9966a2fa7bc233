/* plog_test.c - unit tests of the partition log engine (core/plog*). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/plog.h"
#include "core/st_crc32c.h"
#include "tests/support/tbatch.h"
#include "tests/support/tthread.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    uv_loop_t loop;
    plog_env_t *env;
    plog_shard_t *sh;
    char dir[256];
} fx_t;

static int rm_rf(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    return system(cmd);
}

static uv_loop_t *g_loop;    /* the fixture's: append() waits on it */
static bool g_append_nowait; /* append() returns before its data is durable */

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    g_loop = &f->loop;
    g_append_nowait = false;
    assert_int_equal(plog_env_new(&f->env), 0);
    assert_int_equal(plog_shard_new(f->env, &f->loop, &f->sh), 0);
    char tmpl[] = "/tmp/plog_test.XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    snprintf(f->dir, sizeof(f->dir), "%s/orders-0", tmpl);
    *state = f;
    return 0;
}

static void on_closed(void *arg)
{
    *(int *)arg = 1;
}

static void close_log(fx_t *f, plog_t *log)
{
    int closed = 0;
    plog_close(log, on_closed, &closed);
    while (!closed)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void gate_set(bool closed);

static int teardown(void **state)
{
    fx_t *f = *state;
    gate_set(false); /* a failed test must not leave the flusher held */
    plog_shard_free(f->sh);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    plog_env_free(f->env);
    plog_set_sys(NULL);
    char *slash = strrchr(f->dir, '/');
    *slash = 0;
    rm_rf(f->dir);
    free(f);
    return 0;
}

static plog_t *open_log(fx_t *f, const plog_config_t *cfg)
{
    plog_t *log = NULL;
    char err[256] = "";
    plog_config_t def;
    plog_config_default(&def);
    int rc = plog_open(f->sh, f->dir, cfg ? cfg : &def, 1000, &log, err, sizeof(err));
    if (rc != 0)
        fail_msg("plog_open: %s (%s)", err, st_strerror(rc));
    return log;
}

static void on_synced_flag(void *arg, int status)
{
    (void)status;
    *(int *)arg = 1;
}

/* Append a batch of n records (seed) and return its base offset, once it is
 * durable (readable: the high watermark is the durable end) unless
 * g_append_nowait. */
static int64_t append(plog_t *log, int n, size_t vlen, uint64_t seed, int64_t ts)
{
    size_t len;
    uint8_t *b = tbatch_build(n, vlen, seed, ts, &len);
    plog_append_info_t info;
    const char *why = NULL;
    int rc = plog_append(log, b, len, 7, 1000, &info, &why);
    free(b);
    if (rc != 0)
        fail_msg("append: %s (%s)", st_strerror(rc), why ? why : "");
    if (!g_append_nowait) {
        int done = 0;
        plog_waiter_t w;
        plog_wait_durable(log, &w, info.end_offset, on_synced_flag, &done);
        while (!done)
            uv_run(g_loop, UV_RUN_ONCE);
    }
    return info.base_offset;
}

/* Read the batch holding offset and check it is the one built from seed. */
static void check_read(
    plog_t *log, int64_t offset, int64_t want_base, int n, size_t vlen, uint64_t seed, int64_t ts)
{
    plog_slice_t s;
    assert_int_equal(plog_read(log, offset, 1, &s), 0);
    assert_int_equal(s.first_offset, want_base);
    assert_int_equal(s.next_offset, want_base + n);
    uint8_t *got = malloc((size_t)s.len);
    assert_int_equal(plog_slice_pread(&s, got), 0);
    size_t len;
    uint8_t *exp = tbatch_build(n, vlen, seed, ts, &len);
    assert_int_equal(s.len, (int64_t)len);
    /* Only baseOffset and partitionLeaderEpoch differ from what was sent. */
    assert_memory_equal(got + 8, exp + 8, 4);
    assert_memory_equal(got + 16, exp + 16, len - 16);
    plog_batch_hdr_t h;
    assert_int_equal(plog_batch_validate(got, len, &h, NULL), 0);
    assert_int_equal(h.base_offset, want_base);
    assert_int_equal(h.partition_leader_epoch, 7);
    free(got);
    free(exp);
    plog_slice_release(&s);
}

static void test_crc32c_hw_matches_sw(void **state)
{
    (void)state;
    /* RFC 3720 check value. */
    assert_int_equal(st_crc32c(0, "123456789", 9), 0xE3069283u);
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 31 + 7);
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len < 200; len += 13)
            assert_int_equal(st_crc32c(0, buf + off, len), st_crc32c_sw(0, buf + off, len));
    assert_int_equal(st_crc32c(st_crc32c(0, buf, 300), buf + 300, 700), st_crc32c(0, buf, 1000));
}

static void test_plog_append_read_round_trip(void **state)
{
    fx_t *f = *state;
    plog_t *log = open_log(f, NULL);
    int64_t next = 0;
    for (int i = 0; i < 50; i++) {
        int n = 1 + i % 5;
        assert_int_equal(append(log, n, 100 + (size_t)i, (uint64_t)i, 5000 + i), next);
        next += n;
    }
    assert_int_equal(plog_end_offset(log), next);
    for (int i = 0, base = 0; i < 50; i++) {
        int n = 1 + i % 5;
        for (int k = 0; k < n; k++)
            check_read(log, base + k, base, n, 100 + (size_t)i, (uint64_t)i, 5000 + i);
        base += n;
    }
    /* Reading at the end returns nothing; beyond is out of range. */
    plog_slice_t s;
    assert_int_equal(plog_read(log, next, 1 << 20, &s), 0);
    assert_int_equal(s.len, 0);
    assert_int_equal(plog_read(log, next + 1, 1 << 20, &s), ST_E_RANGE);
    /* max_bytes bounds a multi-batch read but never splits a batch. */
    assert_int_equal(plog_read(log, 0, 1 << 20, &s), 0);
    assert_int_equal(s.first_offset, 0);
    assert_int_equal(s.next_offset, next);
    plog_slice_release(&s);
    close_log(f, log);
}

static void test_plog_index_lookup_at_and_between_entries(void **state)
{
    fx_t *f = *state;
    plog_config_t cfg;
    plog_config_default(&cfg);
    cfg.index_interval_bytes = 300; /* an entry every ~2 batches */
    plog_t *log = open_log(f, &cfg);
    for (int i = 0; i < 40; i++)
        append(log, 3, 50, (uint64_t)i, 100);
    /* Random-access reads (no sequential cache) land on the right batch. */
    for (int64_t o = 119; o >= 0; o -= 7)
        check_read(log, o, o - o % 3, 3, 50, (uint64_t)(o / 3), 100);
    close_log(f, log);
    /* The index files exist and have whole entries. */
    char p[400];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%020d.index", f->dir, 0);
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_size > 0 && st.st_size % 8 == 0);
    snprintf(p, sizeof(p), "%s/%020d.timeindex", f->dir, 0);
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_size % 12 == 0);
    /* Reopen: index loaded, reads still exact. */
    log = open_log(f, &cfg);
    for (int64_t o = 0; o < 120; o += 5)
        check_read(log, o, o - o % 3, 3, 50, (uint64_t)(o / 3), 100);
    close_log(f, log);
}

/* One counter of the calling thread's /proc/thread-self/io ("syscr:" read syscalls, "rchar:"
 * bytes read); the read(2) of that file itself is counted by the next call. */
static long thread_io(const char *key)
{
    char buf[1024];
    int fd = open("/proc/thread-self/io", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    assert_true(n > 0);
    buf[n] = 0;
    const char *p = strstr(buf, key);
    assert_non_null(p);
    return strtol(p + strlen(key), NULL, 10);
}

/* A read of many batches returns exactly the batches that fit (max_bytes, the first batch
 * whole, never at or past the limit) and finds its end through the in-memory index: a few
 * header reads, not one per batch (64 KiB batches made a 4 MiB Fetch pread 64 headers). */
static void test_plog_read_many_batches_exact_with_few_header_reads(void **state)
{
    fx_t *f = *state;
    plog_t *log = open_log(f, NULL); /* index.interval.bytes 4096 */
    enum { NB = 240 };
    int64_t base[NB + 1], pos[NB + 1];
    int cnt[NB];
    g_append_nowait = true;
    base[0] = pos[0] = 0;
    for (int i = 0; i < NB; i++) {
        cnt[i] = 2 + i % 9; /* 1.8 to 9 KiB: some batches below the index interval */
        size_t len;
        free(tbatch_build(cnt[i], 900, (uint64_t)i, 1, &len));
        assert_int_equal(append(log, cnt[i], 900, (uint64_t)i, 1), base[i]);
        base[i + 1] = base[i] + cnt[i];
        pos[i + 1] = pos[i] + (int64_t)len;
    }
    g_append_nowait = false;
    int done = 0;
    plog_waiter_t w; /* all of it durable: the high watermark is the end */
    plog_wait_durable(log, &w, base[NB], on_synced_flag, &done);
    while (!done)
        uv_run(g_loop, UV_RUN_ONCE);
    /* The model: batches from the one holding o while they fit max_bytes (the first one
     * whole) and end below limit. */
    uint64_t rnd = 42;
    for (int q = 0; q < 400; q++) {
        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        int64_t o = (int64_t)((rnd >> 33) % (uint64_t)base[NB]);
        int64_t max = q % 4 == 0 ? 1 : (int64_t)((rnd >> 13) % (1u << 20));
        int64_t limit = q % 3 == 0 ? INT64_MAX : o + (int64_t)((rnd >> 7) % 400);
        int k = 0;
        while (base[k + 1] <= o)
            k++;
        int e = k;
        while (e < NB && base[e + 1] <= limit && (e == k || pos[e + 1] - pos[k] <= max))
            e++;
        plog_slice_t s;
        assert_int_equal(plog_read_upto(log, o, max, limit, &s), 0);
        if (e == k) {
            assert_int_equal(s.len, 0);
            continue;
        }
        assert_int_equal(s.pos, pos[k]);
        assert_int_equal(s.len, pos[e] - pos[k]);
        assert_int_equal(s.first_offset, base[k]);
        assert_int_equal(s.next_offset, base[e]);
        plog_slice_release(&s);
    }
    /* About 1 MiB of ~5.5 KiB batches (the 16 KiB header buffer holds 3): one pread per
     * ~3 batches walked, 60 or more; through the index a handful. */
    plog_slice_t s;
    long r0 = thread_io("syscr:");
    long r1 = thread_io("syscr:");
    assert_int_equal(plog_read(log, 3, 1 << 20, &s), 0);
    long r2 = thread_io("syscr:");
    assert_true(s.len > (1 << 20) - 10000 && s.len <= (1 << 20));
    long preads = (r2 - r1) - (r1 - r0);
    print_message("header reads for a %" PRId64 " byte read: %ld\n", s.len, preads);
    assert_true(preads <= 4);
    plog_slice_release(&s);
    close_log(f, log);
}

/* Warming a hot slice that lost one page reads the chunk holding it, not the whole slice
 * (a 4 MiB Fetch range missing a page was read whole in the thread pool). */
static void test_plog_slice_warm_reads_only_missing_chunks(void **state)
{
    fx_t *f = *state;
    plog_t *log = open_log(f, NULL);
    for (int i = 0; i < 200; i++)
        append(log, 10, 1000, (uint64_t)i, 1); /* ~2 MiB, durable: clean pages */
    plog_slice_t s;
    assert_int_equal(plog_read(log, 0, 4 << 20, &s), 0);
    assert_true(s.len > (1 << 20) + (256 << 10));
    assert_int_equal(plog_slice_warm(&s), 0);
    assert_true(plog_slice_cached(&s));
    /* Drop one page in the middle (clean pages of a synced file go at once). */
    off_t page = (off_t)((s.pos + (1 << 20)) / 4096 * 4096);
    assert_int_equal(fdatasync(s.fd), 0);
    assert_int_equal(posix_fadvise(s.fd, page, 4096, POSIX_FADV_DONTNEED), 0);
    if (plog_slice_cached(&s)) {
        print_message("the page was not dropped (page cache kept it): skipped\n");
    } else {
        long r0 = thread_io("rchar:");
        long r1 = thread_io("rchar:");
        assert_int_equal(plog_slice_warm(&s), 0);
        long r2 = thread_io("rchar:");
        long bytes = (r2 - r1) - (r1 - r0);
        print_message("warm of a %" PRId64 " byte slice missing one page read %ld bytes\n", s.len,
                      bytes);
        assert_true(bytes > 0 && bytes <= (256 << 10));
        assert_true(plog_slice_cached(&s));
    }
    plog_slice_release(&s);
    close_log(f, log);
}

typedef struct {
    int64_t first_base, n_from; /* the first header's base, headers at or past from */
    int64_t from;
    int n;
} scan_from_t;

static int scan_from_cb(void *arg, const plog_batch_hdr_t *h)
{
    scan_from_t *x = arg;
    if (x->n++ == 0)
        x->first_base = h->base_offset;
    x->n_from += h->base_offset >= x->from;
    return 0;
}

/* plog_scan_from starts at an indexed batch at or before the offset's (in
 * the segment holding it), not at the log's start, and reads to the end. */
static void test_plog_scan_from(void **state)
{
    fx_t *f = *state;
    plog_config_t cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 1000;
    cfg.index_interval_bytes = 1;
    plog_t *log = open_log(f, &cfg);
    for (int i = 0; i < 10; i++)
        append(log, 2, 200, (uint64_t)i, 1); /* 2 batches per segment */
    for (int64_t o = 0; o < 20; o++) {
        scan_from_t x = {.from = o};
        assert_int_equal(plog_scan_from(log, o, scan_from_cb, &x), 0);
        /* From an indexed batch at or before the one holding o, in o's
         * segment (4 offsets each): nothing of earlier segments. */
        assert_true(x.first_base <= o - o % 2 && x.first_base >= o - o % 4);
        assert_int_equal(x.n_from, 10 - (o + 1) / 2); /* every later batch */
        assert_int_equal(x.n, 10 - x.first_base / 2);
    }
    scan_from_t x = {.from = 20};
    assert_int_equal(plog_scan_from(log, 20, scan_from_cb, &x), 0);
    assert_int_equal(x.n_from, 0); /* at the end: nothing new */
    close_log(f, log);
}

/* Open descriptors of this process. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* A log keeps one descriptor per segment (its .log): the index lives in
 * memory and its files are opened only to load or save them, the directory
 * only to fsync it. 10,000 one-segment partitions then fit in 10,000
 * descriptors, not 40,000. */
static void test_plog_one_descriptor_per_segment(void **state)
{
    fx_t *f = *state;
    plog_config_t cfg;
    plog_config_default(&cfg);
    cfg.index_interval_bytes = 100;
    cfg.segment_bytes = 2000;
    int before = count_fds();
    plog_t *log = open_log(f, &cfg);
    assert_int_equal(count_fds() - before, 1);
    for (int i = 0; i < 30; i++)
        append(log, 4, 40, (uint64_t)i, 1000 * i); /* durable: its flusher round ended */
    int segs = plog_segment_count(log);
    assert_true(segs >= 3);
    assert_int_equal(count_fds() - before, segs);
    close_log(f, log);
    assert_int_equal(count_fds(), before);
    /* The index files were saved from memory at roll and close: a reopen loads
     * them (reads stay exact), still one descriptor per segment. */
    log = open_log(f, &cfg);
    assert_int_equal(count_fds() - before, segs);
    for (int i = 0; i < 30; i++)
        check_read(log, 4 * i + 1, 4 * i, 4, 40, (uint64_t)i, 1000 * i);
    close_log(f, log);
}

static void test_plog_offset_for_time(void **state)
{
    fx_t *f = *state;
    plog_config_t cfg;
    plog_config_default(&cfg);
    cfg.index_interval_bytes = 200;
    cfg.segment_bytes = 2000;
    plog_t *log = open_log(f, &cfg);
    /* Batch i holds 4 records with timestamps 1000*i + 0..3. */
    for (int i = 0; i < 30; i++)
        append(log, 4, 40, (uint64_t)i, 1000 * i);
    assert_true(plog_segment_count(log) > 2);
    for (int i = 0; i < 30; i++) {
        for (int k = 0; k < 4; k++) {
            int64_t off, ts;
            assert_int_equal(plog_offset_for_time(log, 1000 * i + k, &off, &ts), 0);
            assert_int_equal(off, 4 * i + k);
            assert_int_equal(ts, 1000 * i + k); /* the record's, not its batch's max */
        }
        int64_t off, ts;
        /* Between batches: the first record of the next batch. */
        if (i < 29) {
            assert_int_equal(plog_offset_for_time(log, 1000 * i + 500, &off, &ts), 0);
            assert_int_equal(off, 4 * (i + 1));
        }
    }
    int64_t off, ts;
    assert_int_equal(plog_offset_for_time(log, 10000000, &off, &ts), ST_E_NOTFOUND);
    assert_int_equal(plog_offset_for_time(log, -5, &off, &ts), 0);
    assert_int_equal(off, 0);
    close_log(f, log);
}

static int count_files(const char *dir, const char *ext)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name), el = strlen(ext);
        n += l > el && strcmp(e->d_name + l - el, ext) == 0;
    }
    if (d)
        closedir(d);
    return n;
}

static void test_plog_roll_by_bytes_and_ms(void **state)
{
    fx_t *f = *state;
    plog_config_t cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 1000;
    cfg.segment_ms = 60000;
    plog_t *log = open_log(f, &cfg);
    for (int i = 0; i < 10; i++)
        append(log, 2, 200, (uint64_t)i, 1); /* ~500 bytes each: 2 per segment */
    assert_int_equal(plog_segment_count(log), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(plog_segment_base(log, i), 4 * i);
    /* segment.ms: no roll before the age, a roll after it. */
    assert_int_equal(plog_tick(log, 1000 + 59999), 0);
    assert_int_equal(plog_segment_count(log), 5);
    assert_int_equal(plog_tick(log, 1000 + 60000), 0);
    assert_int_equal(plog_segment_count(log), 6);
    assert_int_equal(plog_segment_base(log, 5), 20);
    /* An empty active segment does not roll again. */
    assert_int_equal(plog_tick(log, 1000000), 0);
    assert_int_equal(plog_segment_count(log), 6);
    close_log(f, log);
    assert_int_equal(count_files(f->dir, ".log"), 6);
    log = open_log(f, &cfg);
    assert_int_equal(plog_segment_count(log), 6);
    assert_int_equal(plog_end_offset(log), 20);
    check_read(log, 13, 12, 2, 200, 6, 1);
    close_log(f, log);
}

static void test_plog_retention_bytes_and_ms(void **state)
{
    fx_t *f = *state;
    plog_config_t cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 1000;
    cfg.retention_ms = -1;
    plog_t *log = open_log(f, &cfg);
    for (int i = 0; i < 10; i++)
        append(log, 2, 200, (uint64_t)i, 1000 * i); /* 5 segments of ~1000 bytes */
    int64_t seg_size = plog_size_bytes(log) / 5;
    cfg.retention_bytes = 3 * seg_size; /* keep 3 segments */
    plog_set_config(log, &cfg);
    assert_int_equal(plog_tick(log, 0), 2);
    assert_int_equal(plog_segment_count(log), 3);
    assert_int_equal(plog_start_offset(log), 8);
    plog_slice_t s;
    assert_int_equal(plog_read(log, 7, 100, &s), ST_E_RANGE);
    check_read(log, 8, 8, 2, 200, 4, 4000);
    /* retention.ms on the newest timestamp of each segment; never the active one. */
    cfg.retention_bytes = -1;
    cfg.retention_ms = 1000;
    plog_set_config(log, &cfg);
    assert_int_equal(plog_tick(log, 7001 + 1000), 1); /* segment [8,12) max ts 5001 */
    assert_int_equal(plog_start_offset(log), 12);
    assert_int_equal(plog_tick(log, 100000000), 1);
    assert_int_equal(plog_segment_count(log), 1);
    assert_int_equal(plog_start_offset(log), 16);
    close_log(f, log);
    plog_env_free(f->env); /* drain deletions */
    assert_int_equal(plog_env_new(&f->env), 0);
    assert_int_equal(count_files(f->dir, ".log"), 1);
    assert_int_equal(count_files(f->dir, ".index"), 1);
    assert_int_equal(count_files(f->dir, ".deleted"), 0);
    /* The log start survives a restart. */
    plog_shard_free(f->sh);
    assert_int_equal(plog_shard_new(f->env, &f->loop, &f->sh), 0);
    log = open_log(f, &cfg);
    assert_int_equal(plog_start_offset(log), 16);
    assert_int_equal(plog_end_offset(log), 20);
    close_log(f, log);
}

static void test_plog_recovery_torn_tail_every_byte(void **state)
{
    fx_t *f = *state;
    plog_t *log = open_log(f, NULL);
    for (int i = 0; i < 3; i++)
        append(log, 2, 30, (uint64_t)i, 10);
    int64_t good_size = plog_size_bytes(log);
    append(log, 3, 25, 99, 10); /* the batch to tear */
    int64_t full = plog_size_bytes(log);
    close_log(f, log);
    char path[400];
    snprintf(path, sizeof(path), "%s/%020d.log", f->dir, 0);
    int fd = open(path, O_RDONLY);
    uint8_t *bytes = malloc((size_t)full);
    assert_int_equal(pread(fd, bytes, (size_t)full, 0), full);
    close(fd);
    for (int64_t cut = good_size; cut <= full; cut++) {
        fd = open(path, O_WRONLY | O_TRUNC);
        assert_int_equal(write(fd, bytes, (size_t)cut), cut);
        close(fd);
        log = open_log(f, NULL);
        if (cut == full) {
            assert_int_equal(plog_end_offset(log), 9);
            check_read(log, 8, 6, 3, 25, 99, 10);
        } else {
            assert_int_equal(plog_end_offset(log), 6);
            assert_int_equal(plog_size_bytes(log), good_size);
            check_read(log, 5, 4, 2, 30, 2, 10);
            /* The log is writable after recovery and offsets continue. */
            assert_int_equal(append(log, 1, 5, 7, 10), 6);
        }
        close_log(f, log);
    }
    /* A flipped byte inside the last batch: CRC fails, the batch is dropped. */
    fd = open(path, O_WRONLY | O_TRUNC);
    bytes[full - 3] ^= 0x40;
    assert_int_equal(write(fd, bytes, (size_t)full), full);
    close(fd);
    log = open_log(f, NULL);
    assert_int_equal(plog_end_offset(log), 6);
    close_log(f, log);
    free(bytes);
}

static void test_plog_recovery_rebuilds_missing_and_corrupt_index(void **state)
{
    fx_t *f = *state;
    plog_config_t cfg;
    plog_config_default(&cfg);
    cfg.index_interval_bytes = 100;
    cfg.segment_bytes = 3000;
    plog_t *log = open_log(f, &cfg);
    for (int i = 0; i < 30; i++)
        append(log, 2, 60, (uint64_t)i, 100 * i);
    int segs = plog_segment_count(log);
    assert_true(segs >= 2);
    close_log(f, log);
    char p[400];
    snprintf(p, sizeof(p), "%s/%020d.index", f->dir, 0);
    assert_int_equal(unlink(p), 0);
    /* Corrupt the index of the active segment: garbage entries. */
    log = open_log(f, &cfg);
    int64_t last_base = plog_segment_base(log, plog_segment_count(log) - 1);
    close_log(f, log);
    snprintf(p, sizeof(p), "%s/%020" PRId64 ".index", f->dir, last_base);
    int fd = open(p, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "\x7f\xff\xff\xff\x7f\xff\xff\xff\x00\x00\x00\x01", 12), 12);
    close(fd);
    log = open_log(f, &cfg);
    assert_int_equal(plog_end_offset(log), 60);
    for (int64_t o = 0; o < 60; o += 3)
        check_read(log, o, o - o % 2, 2, 60, (uint64_t)(o / 2), 100 * (o / 2));
    int64_t off, ts;
    assert_int_equal(plog_offset_for_time(log, 1500, &off, &ts), 0);
    assert_int_equal(off, 30);
    close_log(f, log);
    struct stat st;
    snprintf(p, sizeof(p), "%s/%020d.index", f->dir, 0);
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_size > 0 && st.st_size % 8 == 0);
}

static void test_plog_append_rejects_bad_batches(void **state)
{
    fx_t *f = *state;
    plog_t *log = open_log(f, NULL);
    append(log, 1, 10, 1, 1);
    int64_t size = plog_size_bytes(log);
    size_t len;
    uint8_t *b = tbatch_build(3, 10, 2, 1, &len);
    plog_append_info_t info;
    const char *why = NULL;
    b[len - 1] ^= 1; /* payload byte: CRC mismatch */
    assert_int_equal(plog_append(log, b, len, 0, 1, &info, &why), ST_E_CORRUPT);
    assert_non_null(why);
    b[len - 1] ^= 1;
    b[16] = 1; /* magic */
    assert_int_equal(plog_append(log, b, len, 0, 1, &info, &why), ST_E_MALFORMED);
    b[16] = 2;
    assert_int_equal(plog_append(log, b, len - 5, 0, 1, &info, &why), ST_E_MALFORMED);
    /* A good batch followed by a bad one: nothing of the set is written. */
    uint8_t *two = malloc(2 * len);
    memcpy(two, b, len);
    memcpy(two + len, b, len);
    two[2 * len - 2] ^= 0xff;
    assert_int_equal(plog_append(log, two, 2 * len, 0, 1, &info, &why), ST_E_CORRUPT);
    /* Record count disagreeing with the records (CRC recomputed). */
    b[60] = 4;
    uint32_t crc = st_crc32c(0, b + 21, len - 21);
    b[17] = (uint8_t)(crc >> 24), b[18] = (uint8_t)(crc >> 16), b[19] = (uint8_t)(crc >> 8),
    b[20] = (uint8_t)crc;
    assert_int_equal(plog_append(log, b, len, 0, 1, &info, &why), ST_E_MALFORMED);
    assert_int_equal(plog_size_bytes(log), size);
    assert_int_equal(plog_end_offset(log), 1);
    free(two);
    free(b);
    close_log(f, log);
}

/* ---- Syscall faults ---- */

static int g_fail_pwrite, g_fail_fsync, g_n_fsync;

static ssize_t fake_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (g_fail_pwrite) {
        /* Half the bytes land, then the device is full. */
        ssize_t w = pwrite(fd, buf, n / 2, off);
        (void)w;
        errno = ENOSPC;
        return -1;
    }
    return pwrite(fd, buf, n, off);
}

static int fake_fdatasync(int fd)
{
    __atomic_add_fetch(&g_n_fsync, 1, __ATOMIC_SEQ_CST);
    if (g_fail_fsync) {
        errno = EIO;
        return -1;
    }
    return fdatasync(fd);
}

static const plog_sys_t k_fake = {.pwrite = fake_pwrite, .fdatasync = fake_fdatasync};

typedef struct {
    int fired, status;
} ack_t;

static void on_durable(void *arg, int status)
{
    ack_t *a = arg;
    a->fired++;
    a->status = status;
}

/* A write the flusher cannot make (ENOSPC after half the bytes) fails the
 * log, as a failed fdatasync does: the append was accepted (offsets given,
 * producer state moved on), so it cannot be refused any more. Its waiters,
 * written (acks=1) or durable, get ST_E_FAILED, appends are refused, nothing
 * of it becomes visible, and a restart recovers what is on disk: the data
 * acknowledged before, not the torn write. */
static void test_plog_write_error_fails_log(void **state)
{
    fx_t *f = *state;
    plog_set_sys(&k_fake);
    plog_t *log = open_log(f, NULL);
    append(log, 2, 100, 1, 1);
    size_t len;
    uint8_t *b = tbatch_build(2, 100, 2, 1, &len);
    plog_append_info_t info;
    const char *why = NULL;
    g_fail_pwrite = 1;
    assert_int_equal(plog_append(log, b, len, 0, 1, &info, &why), 0);
    assert_int_equal(info.end_offset, 4);
    ack_t d = {0}, wr = {0};
    plog_waiter_t w1, w2;
    plog_wait_durable(log, &w1, 4, on_durable, &d);
    plog_wait_written(log, &w2, 4, on_durable, &wr);
    while (!d.fired || !wr.fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(d.status, ST_E_FAILED);
    assert_int_equal(wr.status, ST_E_FAILED);
    assert_int_equal(plog_failed(log), ST_E_FAILED);
    assert_int_equal(plog_high_watermark(log), 2);
    assert_int_equal(plog_durable_offset(log), 2);
    g_fail_pwrite = 0; /* space is back: the log stays failed until a restart */
    assert_int_equal(plog_append(log, b, len, 0, 1, &info, &why), ST_E_FAILED);
    /* What was acknowledged before still answers. */
    ack_t old = {0};
    plog_waiter_t w3;
    plog_wait_durable(log, &w3, 2, on_durable, &old);
    assert_int_equal(old.fired, 1);
    assert_int_equal(old.status, 0);
    check_read(log, 0, 0, 2, 100, 1, 1);
    free(b);
    close_log(f, log);
    log = open_log(f, NULL); /* recovery cuts the torn half batch */
    assert_int_equal(plog_failed(log), 0);
    assert_int_equal(plog_end_offset(log), 2);
    check_read(log, 0, 0, 2, 100, 1, 1);
    assert_int_equal(append(log, 2, 100, 3, 1), 2); /* offsets continue */
    check_read(log, 2, 2, 2, 100, 3, 1);
    close_log(f, log);
}

static void test_plog_durable_ack_and_group_commit(void **state)
{
    fx_t *f = *state;
    plog_set_sys(&k_fake);
    plog_t *log = open_log(f, NULL);
    g_n_fsync = 0;
    g_append_nowait = true;
    enum { N = 200 };
    ack_t acks[N] = {{0}};
    plog_waiter_t w[N];
    for (int i = 0; i < N; i++) {
        append(log, 1, 50, (uint64_t)i, 1);
        plog_wait_durable(log, &w[i], plog_end_offset(log), on_durable, &acks[i]);
    }
    while (acks[N - 1].fired == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    for (int i = 0; i < N; i++) {
        assert_int_equal(acks[i].fired, 1);
        assert_int_equal(acks[i].status, 0);
    }
    assert_int_equal(plog_durable_offset(log), N);
    /* Appends queued while a sync runs share the next one. */
    assert_true(g_n_fsync < N);
    assert_true(g_n_fsync >= 1);
    /* Already durable: fires at once. */
    ack_t now = {0};
    plog_waiter_t wn;
    plog_wait_durable(log, &wn, 5, on_durable, &now);
    assert_int_equal(now.fired, 1);
    close_log(f, log);
}

static void test_plog_fsync_error_fails_log(void **state)
{
    fx_t *f = *state;
    plog_set_sys(&k_fake);
    plog_t *log = open_log(f, NULL);
    g_fail_fsync = 1;
    append(log, 1, 10, 1, 1);
    ack_t a = {0};
    plog_waiter_t w;
    plog_wait_durable(log, &w, 1, on_durable, &a);
    while (!a.fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(a.status, ST_E_FAILED);
    g_fail_fsync = 0;
    size_t len;
    uint8_t *b = tbatch_build(1, 10, 2, 1, &len);
    plog_append_info_t info;
    assert_int_equal(plog_append(log, b, len, 0, 1, &info, NULL), ST_E_FAILED);
    free(b);
    close_log(f, log);
}

static void on_done(void *arg, int status)
{
    ack_t *a = arg;
    a->fired++;
    a->status = status;
}

static void test_plog_delete_records_moves_start_and_persists(void **state)
{
    fx_t *f = *state;
    plog_config_t cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 1000;
    plog_t *log = open_log(f, &cfg);
    for (int i = 0; i < 10; i++)
        append(log, 2, 200, (uint64_t)i, 1); /* 5 segments of 4 offsets */
    ack_t a = {0};
    assert_int_equal(plog_delete_records(log, 21, on_done, &a), ST_E_RANGE);
    assert_int_equal(plog_delete_records(log, 9, on_done, &a), 0);
    assert_int_equal(plog_start_offset(log), 9);
    while (!a.fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(a.status, 0);
    assert_int_equal(plog_segment_count(log), 3); /* [8,12) keeps offset 9 */
    plog_slice_t s;
    assert_int_equal(plog_read(log, 8, 100, &s), ST_E_RANGE);
    assert_int_equal(plog_read(log, 9, 100, &s), 0);
    assert_int_equal(s.first_offset, 8); /* whole batches: the one holding 9 */
    plog_slice_release(&s);
    int64_t off, ts;
    assert_int_equal(plog_offset_for_time(log, 0, &off, &ts), 0);
    assert_int_equal(off, 9);
    /* Not above the start: answered at once, nothing changes. */
    ack_t b = {0};
    assert_int_equal(plog_delete_records(log, 3, on_done, &b), 0);
    assert_int_equal(b.fired, 1);
    assert_int_equal(plog_start_offset(log), 9);
    close_log(f, log);
    log = open_log(f, &cfg);
    assert_int_equal(plog_start_offset(log), 9); /* persisted */
    assert_int_equal(plog_end_offset(log), 20);
    close_log(f, log);
}

/* ---- DeleteRecords' checkpoint fsync and the loop ---- */

static pthread_mutex_t g_ck_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_ck_cv = PTHREAD_COND_INITIALIZER;
static int g_ck_state; /* 0: none yet, 1: a checkpoint's fdatasync is held, 2: released */

static bool is_start_ckpt(int fd)
{
    char link[64], path[4200];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n <= 0)
        return false;
    path[n] = 0;
    return strstr(path, "/log-start-offset.tmp") != NULL;
}

/* The first checkpoint fdatasync waits until the test releases it (or, so a
 * regression fails instead of hanging, for at most 60 s). */
static int hold_ckpt_fdatasync(int fd)
{
    if (is_start_ckpt(fd)) {
        pthread_mutex_lock(&g_ck_mu);
        if (g_ck_state == 0) {
            g_ck_state = 1;
            pthread_cond_broadcast(&g_ck_cv);
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 60;
            while (g_ck_state == 1 && pthread_cond_timedwait(&g_ck_cv, &g_ck_mu, &until) == 0)
                ;
            g_ck_state = 2;
        }
        pthread_mutex_unlock(&g_ck_mu);
    }
    return fdatasync(fd);
}

static const plog_sys_t k_hold_ckpt = {.fdatasync = hold_ckpt_fdatasync};

/* An append on the loop, and its sync by the flusher, do not wait for the
 * fsync of DeleteRecords' checkpoint (on the thread pool); two checkpoints
 * in flight end with the later start on disk, each acknowledged after it. */
static void test_plog_delete_records_checkpoint_does_not_block_the_loop(void **state)
{
    fx_t *f = *state;
    plog_set_sys(&k_hold_ckpt);
    g_ck_state = 0;
    plog_t *log = open_log(f, NULL);
    for (int i = 0; i < 4; i++)
        append(log, 1, 10, (uint64_t)i, 1);
    ack_t a = {0}, b = {0};
    assert_int_equal(plog_delete_records(log, 2, on_done, &a), 0);
    pthread_mutex_lock(&g_ck_mu);
    while (g_ck_state == 0)
        pthread_cond_wait(&g_ck_cv, &g_ck_mu);
    pthread_mutex_unlock(&g_ck_mu);
    /* The checkpoint's fdatasync is held: appending, and waiting for the
     * append to be durable, must still complete. */
    append(log, 1, 10, 9, 1);
    assert_int_equal(plog_delete_records(log, 3, on_done, &b), 0);
    pthread_mutex_lock(&g_ck_mu);
    bool held = g_ck_state == 1;
    g_ck_state = 2;
    pthread_cond_broadcast(&g_ck_cv);
    pthread_mutex_unlock(&g_ck_mu);
    assert_true(held); /* the append did not wait for the release */
    assert_int_equal(a.fired + b.fired, 0);
    while (!a.fired || !b.fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(a.status, 0);
    assert_int_equal(b.status, 0);
    close_log(f, log);
    log = open_log(f, NULL);
    assert_int_equal(plog_start_offset(log), 3); /* durable before the answer */
    assert_int_equal(plog_end_offset(log), 5);
    close_log(f, log);
}

typedef struct {
    int n;
    int64_t base[16], next[16];
} sealed_t;

static void on_sealed(void *arg, plog_t *log, int64_t base, int64_t next)
{
    sealed_t *s = arg;
    (void)log;
    s->base[s->n] = base;
    s->next[s->n++] = next;
}

/* A roll of an idle log (segment.ms) still hands the sealed segment to the
 * uploader, once its sync is done, though the durable end did not move. */
static void test_plog_idle_roll_is_announced(void **state)
{
    fx_t *f = *state;
    sealed_t sealed = {0};
    plog_shard_on_sealed(f->sh, on_sealed, &sealed);
    plog_t *log = open_log(f, NULL);
    append(log, 2, 200, 1, 1000);
    assert_int_equal(sealed.n, 0);
    assert_int_equal(plog_tick(log, 1000 + 604800000), 0); /* segment.ms */
    while (sealed.n == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(sealed.base[0], 0);
    assert_int_equal(sealed.next[0], 2);
    plog_seg_info_t info;
    assert_int_equal(plog_sealed_get(log, 0, &info), 0);
    plog_seg_info_release(&info);
    close_log(f, log);
}

static void test_plog_local_retention_waits_for_upload(void **state)
{
    fx_t *f = *state;
    sealed_t sealed = {0};
    plog_shard_on_sealed(f->sh, on_sealed, &sealed);
    plog_config_t cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 1000;
    cfg.retention_ms = -1;
    cfg.remote_enabled = true;
    cfg.local_retention_bytes = 1000; /* about one segment stays local */
    plog_t *log = open_log(f, &cfg);
    for (int i = 0; i < 10; i++)
        append(log, 2, 200, (uint64_t)i, 1000 * i); /* 5 segments of 4 offsets */
    /* Four rolls were announced, each with its offsets. */
    assert_int_equal(sealed.n, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sealed.base[i], 4 * i);
        assert_int_equal(sealed.next[i], 4 * i + 4);
    }
    /* The uploader walks the sealed segments in order. */
    plog_seg_info_t info;
    assert_int_equal(plog_sealed_get(log, 0, &info), 0);
    assert_int_equal(info.base_offset, 0);
    assert_int_equal(info.next_offset, 4);
    assert_true(info.size > 0 && info.fd >= 0);
    assert_non_null(strstr(info.path, "00000000000000000000.log"));
    plog_seg_info_release(&info);
    assert_int_equal(plog_sealed_get(log, 5, &info), 0);
    assert_int_equal(info.base_offset, 4);
    plog_seg_info_release(&info);
    assert_int_equal(plog_sealed_get(log, 16, &info), ST_E_NOTFOUND); /* the active one */
    /* Nothing uploaded: local retention deletes nothing. */
    assert_int_equal(plog_tick(log, 1000), 0);
    assert_int_equal(plog_segment_count(log), 5);
    /* Two segments uploaded: only those may go; the log start stays at 0. */
    plog_set_uploaded(log, 8);
    assert_int_equal(plog_tick(log, 1000), 2);
    assert_int_equal(plog_start_offset(log), 0);
    assert_int_equal(plog_local_start_offset(log), 8);
    plog_slice_t s;
    assert_int_equal(plog_read(log, 3, 100, &s), ST_E_OFFLOADED);
    assert_int_equal(plog_read(log, 8, 100, &s), 0);
    plog_slice_release(&s);
    /* Everything sealed uploaded: local retention keeps ~1000 bytes. */
    plog_set_uploaded(log, 16);
    assert_int_equal(plog_tick(log, 1000), 1);
    assert_int_equal(plog_local_start_offset(log), 12);
    close_log(f, log);
    /* After a restart, tiering lowers the start to what remote storage holds. */
    log = open_log(f, &cfg);
    assert_int_equal(plog_start_offset(log), 12);
    plog_set_remote_start(log, 0);
    assert_int_equal(plog_start_offset(log), 0);
    close_log(f, log);
}

static void test_plog_parse_dir_name(void **state)
{
    (void)state;
    char t[64];
    int32_t p;
    assert_int_equal(plog_parse_dir_name("my-topic-12", t, sizeof(t), &p), 0);
    assert_string_equal(t, "my-topic");
    assert_int_equal(p, 12);
    assert_int_equal(plog_parse_dir_name("nopart", t, sizeof(t), &p), ST_E_INVAL);
    assert_int_equal(plog_parse_dir_name("-3", t, sizeof(t), &p), ST_E_INVAL);
    assert_int_equal(plog_parse_dir_name("t-3x", t, sizeof(t), &p), ST_E_INVAL);
    assert_int_equal(plog_parse_dir_name("t-99999999999", t, sizeof(t), &p), ST_E_INVAL);
}

typedef struct {
    int n;
    int stop_after;
} recs_seen_t;

static int on_record(void *arg, const plog_batch_hdr_t *h, const plog_record_t *rec)
{
    recs_seen_t *s = arg;
    char key[32];
    snprintf(key, sizeof(key), "k3-%d", s->n);
    assert_int_equal(h->base_offset, 100);
    assert_int_equal(rec->offset, 100 + s->n);
    assert_int_equal(rec->timestamp, 5000 + s->n);
    assert_int_equal(rec->key_len, strlen(key));
    assert_memory_equal(rec->key, key, strlen(key));
    assert_int_equal(rec->value_len, 8);
    for (int j = 0; j < 8; j++)
        assert_int_equal(rec->value[j], tbatch_value_byte(3, s->n, (size_t)j));
    assert_int_equal(rec->n_headers, 0);
    return ++s->n == s->stop_after ? ST_E_CANCELED : 0;
}

/* Offline readers (strata archive cat) get every record of a batch, bounds-checked. */
static void test_plog_batch_records_decodes_every_record(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = tbatch_build(5, 8, 3, 5000, &len);
    for (int i = 0; i < 8; i++)
        b[i] = i == 7 ? 100 : 0; /* baseOffset 100 (outside the CRC) */
    recs_seen_t s = {0, 0};
    assert_int_equal(plog_batch_records(b, len, 1 << 20, on_record, &s), 0);
    assert_int_equal(s.n, 5);
    s = (recs_seen_t){0, 2};
    assert_int_equal(plog_batch_records(b, len, 1 << 20, on_record, &s), ST_E_CANCELED);
    assert_int_equal(s.n, 2);
    s = (recs_seen_t){0, 0};
    assert_int_equal(plog_batch_records(b, len - 1, 1 << 20, on_record, &s), ST_E_MALFORMED);
    b[PLOG_BATCH_HDR_SIZE] = 0x7f; /* first record's length: past the end */
    assert_int_equal(plog_batch_records(b, len, 1 << 20, on_record, &s), ST_E_MALFORMED);
    assert_int_equal(s.n, 0);
    free(b);
}

static int count_wrapped(void *arg, const plog_batch_hdr_t *h, const plog_record_t *rec)
{
    int *n = arg;
    assert_int_equal(h->base_offset, INT64_MAX);
    assert_int_equal(rec->offset, (int64_t)((uint64_t)INT64_MAX + (uint64_t)*n));
    assert_int_equal(rec->timestamp, (int64_t)((uint64_t)INT64_MAX + (uint64_t)*n));
    (*n)++;
    return 0;
}

/* A client's base offset and base timestamp are untrusted: near INT64_MAX the
 * records' offsets and timestamps wrap instead of overflowing (undefined
 * behaviour: the live fuzzer's UBSan report on a compacted topic's key check). */
static void test_plog_batch_records_wrap_at_int64_max(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = tbatch_build(5, 8, 3, 5000, &len);
    for (int i = 0; i < 8; i++) {
        b[i] = i == 0 ? 0x7f : 0xff;      /* baseOffset INT64_MAX */
        b[27 + i] = i == 0 ? 0x7f : 0xff; /* baseTimestamp INT64_MAX (no CRC checked here) */
    }
    int n = 0;
    assert_int_equal(plog_batch_records(b, len, 1 << 20, count_wrapped, &n), 0);
    assert_int_equal(n, 5);
    int64_t ts = 0;
    assert_int_equal(plog_batch_offset_for_time(b, len, INT64_MIN, &ts), INT64_MAX);
    assert_int_equal(ts, INT64_MAX);
    free(b);
}

/* ---- High watermark and write caching ---- */

static int g_hw_calls;

static void on_hw(void *arg, plog_t *log)
{
    (void)log;
    (*(int *)arg)++;
}

/* Without write caching, consumers see only what is durable: a write in the
 * page cache is invisible until its sync completed (manual flusher). */
static void test_plog_hw_is_durable_end(void **state)
{
    (void)state;
    uv_loop_t loop;
    plog_env_t *env;
    plog_shard_t *sh;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(plog_env_new_manual(&env), 0);
    assert_int_equal(plog_shard_new(env, &loop, &sh), 0);
    g_hw_calls = 0;
    plog_shard_on_hw(sh, on_hw, &g_hw_calls);
    char tmpl[] = "/tmp/plog_hw.XXXXXX", dir[300];
    assert_non_null(mkdtemp(tmpl));
    snprintf(dir, sizeof(dir), "%s/hw-0", tmpl);
    plog_config_t cfg;
    plog_config_default(&cfg);
    plog_t *log;
    char err[256];
    assert_int_equal(plog_open(sh, dir, &cfg, 1000, &log, err, sizeof(err)), 0);
    size_t len;
    uint8_t *b = tbatch_build(3, 20, 1, 1, &len);
    plog_append_info_t info;
    assert_int_equal(plog_append(log, b, len, 0, 1000, &info, NULL), 0);
    free(b);
    assert_int_equal(plog_end_offset(log), 3);
    assert_int_equal(plog_high_watermark(log), 0);
    assert_true(plog_unflushed_bytes(log) > 0);
    plog_slice_t s;
    assert_int_equal(plog_read(log, 0, 1 << 20, &s), 0);
    assert_int_equal(s.len, 0); /* not durable: not visible */
    ack_t a = {0};
    plog_waiter_t w;
    plog_wait_acked(log, &w, 3, on_durable, &a);
    assert_int_equal(a.fired, 0);
    /* DeleteRecords cannot pass the high watermark either. */
    assert_int_equal(plog_delete_records(log, 2, NULL, NULL), ST_E_RANGE);
    plog_env_flush_step(env);
    while (!a.fired)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(a.status, 0);
    assert_int_equal(plog_high_watermark(log), 3);
    assert_int_equal(plog_unflushed_bytes(log), 0);
    assert_int_equal(g_hw_calls, 1); /* Fetch long polls are woken */
    assert_int_equal(plog_read(log, 0, 1 << 20, &s), 0);
    assert_int_equal(s.next_offset, 3);
    plog_slice_release(&s);
    int closed = 0;
    plog_close(log, on_closed, &closed);
    while (!closed) {
        plog_env_flush_step(env);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    plog_shard_free(sh);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    plog_env_free(env);
    *strrchr(dir, '/') = 0;
    rm_rf(dir);
}

static plog_t *open_caching(fx_t *f, int64_t flush_ms, int64_t flush_bytes, int64_t flush_msgs)
{
    plog_config_t cfg;
    plog_config_default(&cfg);
    cfg.write_caching = true;
    cfg.flush_ms = flush_ms;
    cfg.flush_bytes = flush_bytes;
    cfg.flush_messages = flush_msgs;
    return open_log(f, &cfg);
}

/* write.caching: acknowledged and visible from the page cache; synced by
 * flush.bytes / flush.messages at once, by flush.ms later, or at once when a
 * waiter needs durability. (flush.ms is one hour where another trigger is
 * tested: only that trigger can sync.) */
static void test_plog_write_caching(void **state)
{
    fx_t *f = *state;
    plog_set_sys(&k_fake);
    g_append_nowait = true;
    plog_t *log = open_caching(f, 3600000, 1 << 30, INT64_MAX);
    g_n_fsync = 0;
    append(log, 2, 100, 1, 1);
    ack_t a = {0};
    plog_waiter_t w;
    plog_wait_acked(log, &w, plog_end_offset(log), on_durable, &a);
    while (!a.fired) /* once written by the flusher, from the page cache */
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(a.status, 0);
    assert_int_equal(plog_high_watermark(log), 2);
    check_read(log, 0, 0, 2, 100, 1, 1);
    assert_true(plog_unflushed_bytes(log) > 0);
    assert_true(plog_durable_offset(log) < 2);
    /* Someone needs it durable (e.g. a close): synced now, not in an hour. */
    ack_t d = {0};
    plog_wait_durable(log, &w, 2, on_durable, &d);
    while (!d.fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(plog_durable_offset(log), 2);
    assert_int_equal(plog_unflushed_bytes(log), 0);
    close_log(f, log);

    /* flush.bytes */
    log = open_caching(f, 3600000, 500, INT64_MAX);
    append(log, 1, 100, 2, 1);
    assert_true(plog_durable_offset(log) < plog_end_offset(log));
    append(log, 1, 600, 3, 1); /* past 500 unsynced bytes */
    while (plog_durable_offset(log) < plog_end_offset(log))
        uv_run(&f->loop, UV_RUN_ONCE);
    close_log(f, log);

    /* flush.messages */
    log = open_caching(f, 3600000, 1 << 30, 5);
    append(log, 3, 10, 4, 1);
    assert_true(plog_durable_offset(log) < plog_end_offset(log));
    append(log, 3, 10, 5, 1); /* 6 unsynced records */
    while (plog_durable_offset(log) < plog_end_offset(log))
        uv_run(&f->loop, UV_RUN_ONCE);
    close_log(f, log);

    /* flush.ms: nothing else asks, the delayed flush syncs it. */
    log = open_caching(f, 20, 1 << 30, INT64_MAX);
    int64_t before = g_n_fsync;
    append(log, 2, 100, 6, 1);
    while (plog_durable_offset(log) < plog_end_offset(log))
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(g_n_fsync > before);
    assert_int_equal(plog_unflushed_bytes(log), 0);
    close_log(f, log);
}

/* write.caching under load: appends race the flusher's delayed and immediate
 * rounds (a log can be in both); every round must drop exactly its own
 * reference, or the close never completes or the log is freed early (ASan). */
static void test_plog_write_caching_races(void **state)
{
    fx_t *f = *state;
    g_append_nowait = true;
    plog_t *log = open_caching(f, 1, 1024, INT64_MAX);
    for (int i = 0; i < 3000; i++) {
        append(log, 1, 100, (uint64_t)i, 1);
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (i % 97 == 0) {
            ack_t d = {0};
            plog_waiter_t w;
            plog_wait_durable(log, &w, plog_end_offset(log), on_durable, &d);
            while (!d.fired)
                uv_run(&f->loop, UV_RUN_ONCE);
            assert_int_equal(d.status, 0);
        }
    }
    close_log(f, log);
}

static int64_t read_rp_file(const fx_t *f)
{
    char path[400], buf[32] = "";
    snprintf(path, sizeof(path), "%s/recovery-point", f->dir);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    int64_t v = fgets(buf, sizeof(buf), fp) ? strtoll(buf, NULL, 10) : -1;
    fclose(fp);
    return v;
}

/* A clean close leaves the recovery point at the end (the next start verifies
 * and syncs nothing); a roll moves it to the sealed end. */
static void test_plog_recovery_point(void **state)
{
    fx_t *f = *state;
    plog_config_t cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 600;
    plog_t *log = open_log(f, &cfg);
    assert_int_equal(read_rp_file(f), 0);
    for (int i = 0; i < 3; i++)
        append(log, 2, 200, (uint64_t)i, 1); /* segments [0,2) [2,4) [4,6) */
    assert_int_equal(plog_segment_count(log), 3);
    assert_int_equal(read_rp_file(f), 4);
    close_log(f, log);
    assert_int_equal(read_rp_file(f), 6);
    log = open_log(f, &cfg);
    assert_int_equal(plog_end_offset(log), 6);
    assert_int_equal(read_rp_file(f), 6);
    close_log(f, log);
}

/* ---- Writes off the loop ---- */

/* A pwrite hook with a gate: segment (.log) writes made off the test's
 * loop thread wait while the gate is closed; one made on the loop thread is
 * only counted (the loop must never write a segment, and the test must not
 * hang when it does). */
static pthread_mutex_t g_gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_gate_cv = PTHREAD_COND_INITIALIZER;
static bool g_gate_closed;
static int g_gate_held;    /* writes waiting at the gate */
static int g_loop_pwrites; /* segment writes made on the loop's thread */
static pthread_t g_loop_thread;

static bool is_segment_fd(int fd)
{
    char p[64], t[512];
    snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(p, t, sizeof(t) - 1);
    if (n < 4)
        return false;
    t[n] = 0;
    return strcmp(t + n - 4, ".log") == 0;
}

static ssize_t gate_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (is_segment_fd(fd)) {
        pthread_mutex_lock(&g_gate_mu);
        if (pthread_equal(pthread_self(), g_loop_thread)) {
            g_loop_pwrites++;
        } else {
            g_gate_held++;
            pthread_cond_broadcast(&g_gate_cv);
            while (g_gate_closed)
                pthread_cond_wait(&g_gate_cv, &g_gate_mu);
            g_gate_held--;
        }
        pthread_mutex_unlock(&g_gate_mu);
    }
    return pwrite(fd, buf, n, off);
}

static const plog_sys_t k_gate = {.pwrite = gate_pwrite};

static void gate_set(bool closed)
{
    pthread_mutex_lock(&g_gate_mu);
    g_gate_closed = closed;
    pthread_cond_broadcast(&g_gate_cv);
    pthread_mutex_unlock(&g_gate_mu);
}

/* Wait until the flusher holds a write at the gate (it must: the append
 * queued one), unless the loop wrote it itself (then fail, not hang). */
static void gate_wait_held(void)
{
    pthread_mutex_lock(&g_gate_mu);
    while (g_gate_held == 0 && g_loop_pwrites == 0)
        pthread_cond_wait(&g_gate_cv, &g_gate_mu);
    int on_loop = g_loop_pwrites;
    pthread_mutex_unlock(&g_gate_mu);
    assert_int_equal(on_loop, 0);
}

static int count_batches(void *arg, const plog_batch_hdr_t *h)
{
    (void)h;
    (*(int *)arg)++;
    return 0;
}

/* plog_append returns while the segment write waits behind the gate (as it
 * would behind an fdatasync of the same file): the loop never pwrites a
 * segment. Until the write is made, readers (reads, scans, the high
 * watermark with write caching) see none of the bytes and acks=1 / write
 * caching acknowledge nothing; once it is made, all of them follow. */
static void test_plog_append_writes_off_the_loop(void **state)
{
    fx_t *f = *state;
    plog_set_sys(&k_gate);
    g_loop_thread = pthread_self();
    g_loop_pwrites = 0;
    gate_set(false);
    g_append_nowait = true;
    plog_config_t cfg;
    plog_config_default(&cfg);
    cfg.write_caching = true;
    cfg.flush_ms = 3600000; /* only the written end moves */
    cfg.flush_bytes = 1 << 30;
    plog_t *log = open_log(f, &cfg);
    append(log, 2, 100, 1, 1);
    ack_t a0 = {0};
    plog_waiter_t w0;
    plog_wait_written(log, &w0, 2, on_durable, &a0);
    while (!a0.fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(plog_high_watermark(log), 2);

    gate_set(true);
    int hw_calls = 0;
    plog_shard_on_hw(f->sh, on_hw, &hw_calls);
    assert_int_equal(append(log, 3, 100, 2, 1), 2); /* returns: the loop did not wait */
    gate_wait_held();
    assert_int_equal(plog_end_offset(log), 5);
    assert_int_equal(plog_high_watermark(log), 2); /* not written: not visible */
    plog_slice_t s;
    assert_int_equal(plog_read(log, 2, 1 << 20, &s), 0);
    assert_int_equal(s.len, 0);
    assert_int_equal(plog_read(log, 0, 1 << 20, &s), 0);
    assert_int_equal(s.next_offset, 2); /* the written batch only */
    plog_slice_release(&s);
    int n = 0;
    assert_int_equal(plog_scan_tail(log, 1, -1, count_batches, &n), 0);
    assert_int_equal(n, 1); /* the unwritten batch's header is not read */
    ack_t wr = {0}, ack = {0};
    plog_waiter_t w1, w2;
    plog_wait_written(log, &w1, 5, on_durable, &wr); /* acks=1 */
    plog_wait_acked(log, &w2, 5, on_durable, &ack);  /* acks=all with write caching */
    for (int i = 0; i < 5; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(wr.fired + ack.fired, 0);
    assert_int_equal(hw_calls, 0);

    gate_set(false);
    while (!wr.fired || !ack.fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(wr.status, 0);
    assert_int_equal(ack.status, 0);
    assert_int_equal(plog_high_watermark(log), 5);
    assert_true(hw_calls >= 1); /* Fetch long polls are woken by the write */
    check_read(log, 2, 2, 3, 100, 2, 1);
    n = 0;
    assert_int_equal(plog_scan_tail(log, 1, -1, count_batches, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(g_loop_pwrites, 0);
    plog_shard_on_hw(f->sh, NULL, NULL);
    close_log(f, log);
}

/* Segment writes per env thread, by the thread's name. */
static atomic_int g_writer_pwrites, g_flusher_pwrites;

static ssize_t named_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    char name[16] = "";
    pthread_getname_np(pthread_self(), name, sizeof(name));
    if (is_segment_fd(fd)) {
        if (strcmp(name, "plog-writer") == 0)
            atomic_fetch_add(&g_writer_pwrites, 1);
        else if (strcmp(name, "plog-flusher") == 0)
            atomic_fetch_add(&g_flusher_pwrites, 1);
    }
    return pwrite(fd, buf, n, off);
}

static const plog_sys_t k_named = {.pwrite = named_pwrite};

/* Voluntary context switches of this process's thread named name (each
 * time it went to sleep), or -1 when there is no such thread. */
static long thread_sleeps(const char *name)
{
    pid_t tid;
    if (tthread_named(name, &tid, 1) < 1)
        return -1;
    char p[64], line[128];
    snprintf(p, sizeof(p), "/proc/self/task/%d/status", (int)tid);
    FILE *fp = fopen(p, "r");
    if (!fp)
        return -1;
    long n = -1;
    while (fgets(line, sizeof(line), fp))
        if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1)
            break;
    fclose(fp);
    return n;
}

/* An append whose sync is due now, made while the flusher waits for work, is
 * written by the flusher at the start of its round and the writer is not
 * woken (one thread to schedule per append, not two). With the flusher in an
 * fdatasync, the writer writes (test_plog_written_ack_does_not_wait_for_the_sync). */
static void test_plog_idle_flusher_writes_the_append(void **state)
{
    fx_t *f = *state;
    plog_set_sys(&k_named);
    plog_t *log = open_log(f, NULL);
    atomic_store(&g_writer_pwrites, 0);
    atomic_store(&g_flusher_pwrites, 0);
    long sleeps = thread_sleeps("plog-writer");
    assert_true(sleeps >= 0);
    for (int i = 0; i < 20; i++) {
        while (!plog_env_flusher_idle(f->env))
            usleep(100);
        append(log, 2, 100, (uint64_t)i, 1); /* waits until durable */
    }
    assert_int_equal(thread_sleeps("plog-writer"), sleeps); /* never woken */
    assert_int_equal(atomic_load(&g_writer_pwrites), 0);
    assert_int_equal(atomic_load(&g_flusher_pwrites), 20);
    check_read(log, 0, 0, 2, 100, 0, 1);
    check_read(log, 38, 38, 2, 100, 19, 1);
    close_log(f, log);
}

typedef struct {
    plog_t *log;
    uint8_t *b;
    size_t len;
    _Atomic bool done;
    int rc;
} bg_append_t;

static void *bg_append(void *arg)
{
    bg_append_t *x = arg;
    plog_append_info_t info;
    x->rc = plog_append(x->log, x->b, x->len, 7, 1000, &info, NULL);
    atomic_store(&x->done, true);
    return NULL;
}

/* The bytes queued for writing are bounded: with the write held and the
 * queue at its cap, the next append waits (its loop blocks) until the
 * flusher wrote, instead of queueing without limit. */
static void test_plog_write_queue_is_bounded(void **state)
{
    fx_t *f = *state;
    plog_set_sys(&k_gate);
    g_loop_thread = pthread_self();
    g_loop_pwrites = 0;
    plog_env_set_write_cap(f->env, 1); /* one append at a time */
    g_append_nowait = true;
    plog_t *log = open_log(f, NULL);
    gate_set(true);
    append(log, 1, 100, 1, 1); /* fits the empty queue, held at the gate */
    gate_wait_held();
    bg_append_t x = {.log = log};
    x.b = tbatch_build(1, 100, 2, 1, &x.len);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bg_append, &x), 0);
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    assert_false(atomic_load(&x.done)); /* full: the second append waits */
    gate_set(false);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(x.rc, 0);
    ack_t d = {0};
    plog_waiter_t w;
    plog_wait_durable(log, &w, 2, on_durable, &d);
    while (!d.fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(d.status, 0);
    check_read(log, 0, 0, 1, 100, 1, 1);
    check_read(log, 1, 1, 1, 100, 2, 1);
    free(x.b);
    close_log(f, log);
}

/* An fdatasync hook with the same gate: syncs of segments wait while it is
 * closed (a slow sync). */
static int g_sync_held;

static int gate_fdatasync(int fd)
{
    if (is_segment_fd(fd)) {
        pthread_mutex_lock(&g_gate_mu);
        g_sync_held++;
        pthread_cond_broadcast(&g_gate_cv);
        while (g_gate_closed)
            pthread_cond_wait(&g_gate_cv, &g_gate_mu);
        g_sync_held--;
        pthread_mutex_unlock(&g_gate_mu);
    }
    return fdatasync(fd);
}

static const plog_sys_t k_gate_sync = {.pwrite = named_pwrite, .fdatasync = gate_fdatasync};

/* acks=1 is answered once the batch is written, not a sync later: while the
 * flusher is held in an fdatasync, the writer still writes the next append
 * and its written waiter fires (the durable one waits for the sync). */
static void test_plog_written_ack_does_not_wait_for_the_sync(void **state)
{
    fx_t *f = *state;
    plog_set_sys(&k_gate_sync);
    g_append_nowait = true;
    plog_t *log = open_log(f, NULL);
    atomic_store(&g_writer_pwrites, 0);
    while (!plog_env_flusher_idle(f->env))
        usleep(100);
    gate_set(true);
    append(log, 1, 100, 1, 1); /* the idle flusher writes it, then syncs */
    pthread_mutex_lock(&g_gate_mu);
    while (g_sync_held == 0)
        pthread_cond_wait(&g_gate_cv, &g_gate_mu);
    pthread_mutex_unlock(&g_gate_mu);
    /* The flusher is inside the sync of offset 0: the next append is written
     * meanwhile. */
    append(log, 1, 100, 2, 1);
    ack_t wr = {0}, d = {0};
    plog_waiter_t w1, w2;
    plog_wait_written(log, &w1, 2, on_durable, &wr);
    plog_wait_durable(log, &w2, 2, on_durable, &d);
    /* A guard against a hang, not a timing check: a design that writes only
     * before its syncs never fires it while the sync is held. */
    for (int i = 0; i < 30000 && !wr.fired; i++) {
        struct timespec ms = {0, 1000 * 1000};
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (!wr.fired)
            nanosleep(&ms, NULL);
    }
    assert_int_equal(wr.fired, 1);
    assert_int_equal(wr.status, 0);
    assert_int_equal(atomic_load(&g_writer_pwrites), 1); /* the writer wrote it */
    assert_int_equal(d.fired, 0);
    assert_int_equal(plog_durable_offset(log), 0);
    gate_set(false);
    while (!d.fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(d.status, 0);
    check_read(log, 1, 1, 1, 100, 2, 1);
    close_log(f, log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_hw_matches_sw),
        cmocka_unit_test(test_plog_parse_dir_name),
        cmocka_unit_test(test_plog_batch_records_decodes_every_record),
        cmocka_unit_test(test_plog_batch_records_wrap_at_int64_max),
        cmocka_unit_test_setup_teardown(test_plog_append_read_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_one_descriptor_per_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_index_lookup_at_and_between_entries, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_plog_read_many_batches_exact_with_few_header_reads,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_slice_warm_reads_only_missing_chunks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_plog_offset_for_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_scan_from, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_roll_by_bytes_and_ms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_retention_bytes_and_ms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_recovery_torn_tail_every_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_recovery_rebuilds_missing_and_corrupt_index,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_append_rejects_bad_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_write_error_fails_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_durable_ack_and_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_fsync_error_fails_log, setup, teardown),
        cmocka_unit_test(test_plog_hw_is_durable_end),
        cmocka_unit_test_setup_teardown(test_plog_recovery_point, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_idle_roll_is_announced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_write_caching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_write_caching_races, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_append_writes_off_the_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_idle_flusher_writes_the_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_write_queue_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_written_ack_does_not_wait_for_the_sync, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_plog_delete_records_checkpoint_does_not_block_the_loop,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_delete_records_moves_start_and_persists, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_plog_local_retention_waits_for_upload, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("plog", tests, NULL, NULL);
}
