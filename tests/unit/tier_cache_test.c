/* tier_cache_test.c - unit tests of the hydration chunk cache (tiering/cache.h):
 * LRU eviction order, the byte bound, the LRU rebuilt from the files after a
 * restart, and corrupt entries detected (and removed so they are refetched),
 * among them the torn files a crash can leave (entries are never fsynced),
 * and entry files written past the page cache (O_DIRECT) where it exists.
 * Each test runs its own loop in a fresh temporary directory. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/st_crc32c.h"
#include "tiering/cache.h"

#define HDR 24 /* entry file header (cache.h) */

typedef struct {
    uv_loop_t loop;
    char dir[256];
    hyd_cache_t *c;
    int ready_status;
    bool is_ready;
    /* last get */
    int get_status;
    uint8_t *get_data;
    size_t get_len;
    int n_done;
} fx_t;

static void on_ready(void *arg, int status)
{
    fx_t *f = arg;
    f->is_ready = true;
    f->ready_status = status;
}

static void open_cache(fx_t *f, uint64_t max_bytes)
{
    f->is_ready = false;
    assert_int_equal(hyd_cache_open(&f->loop, f->dir, max_bytes, on_ready, f, &f->c), 0);
    while (!f->is_ready)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->ready_status, 0);
}

static void on_closed(void *arg)
{
    fx_t *f = arg;
    f->c = NULL;
}

static void close_cache(fx_t *f)
{
    hyd_cache_close(f->c, on_closed, f);
    while (f->c)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    char p[512];
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/strata-cache-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    strcat(f->dir, "/cache"); /* created by the open */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->c)
        close_cache(f);
    free(f->get_data);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    rm_rf(f->dir);
    *strrchr(f->dir, '/') = 0;
    rmdir(f->dir);
    free(f);
    return 0;
}

static void on_put(void *arg, int status)
{
    fx_t *f = arg;
    assert_int_equal(status, 0);
    f->n_done++;
}

/* Put len bytes filled with fill under key and wait for it. */
static void put(fx_t *f, const char *key, size_t len, uint8_t fill)
{
    uint8_t *d = malloc(len);
    assert_non_null(d);
    memset(d, fill, len);
    int before = f->n_done;
    assert_int_equal(hyd_cache_put(f->c, key, d, len, on_put, f), 0);
    while (f->n_done == before)
        uv_run(&f->loop, UV_RUN_ONCE);
    free(d);
}

static void on_get(void *arg, int status, uint8_t *data, size_t len, uint32_t crc32c)
{
    fx_t *f = arg;
    if (status == 0)
        assert_int_equal(crc32c, st_crc32c(0, data, len));
    free(f->get_data);
    f->get_status = status;
    f->get_data = data;
    f->get_len = len;
    f->n_done++;
}

static int get(fx_t *f, const char *key, uint32_t expect)
{
    int before = f->n_done;
    assert_int_equal(hyd_cache_get(f->c, key, expect, on_get, f), 0);
    while (f->n_done == before)
        uv_run(&f->loop, UV_RUN_ONCE);
    return f->get_status;
}

static size_t entry_size(const char *key, size_t len)
{
    return HDR + strlen(key) + len;
}

static void test_hyd_cache_get_returns_what_was_put(void **state)
{
    fx_t *f = *state;
    open_cache(f, 1 << 20);
    assert_int_equal(get(f, "obj@0", 0), ST_E_NOTFOUND);
    put(f, "obj@0", 1000, 0xab);
    assert_true(hyd_cache_contains(f->c, "obj@0"));
    uint8_t want[1000];
    memset(want, 0xab, sizeof(want));
    assert_int_equal(get(f, "obj@0", st_crc32c(0, want, sizeof(want))), 0);
    assert_int_equal(f->get_len, 1000);
    assert_memory_equal(f->get_data, want, 1000);
    /* The index's checksum differs: corrupt, removed. */
    assert_int_equal(get(f, "obj@0", 12345), ST_E_CORRUPT);
    assert_false(hyd_cache_contains(f->c, "obj@0"));
    hyd_cache_stats_t st;
    hyd_cache_stats(f->c, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.corrupt, 1);
    assert_int_equal(st.entries, 0);
}

static void test_hyd_cache_add_evicts_least_recently_used(void **state)
{
    fx_t *f = *state;
    size_t one = entry_size("k0", 1000);
    open_cache(f, 3 * one);
    put(f, "k0", 1000, 0);
    put(f, "k1", 1000, 1);
    put(f, "k2", 1000, 2);
    assert_int_equal(get(f, "k0", 0), 0); /* k0 becomes the most recent: k1 is next out */
    put(f, "k3", 1000, 3);
    assert_true(hyd_cache_contains(f->c, "k0"));
    assert_false(hyd_cache_contains(f->c, "k1"));
    assert_true(hyd_cache_contains(f->c, "k2"));
    assert_true(hyd_cache_contains(f->c, "k3"));
    put(f, "k4", 1000, 4);
    assert_false(hyd_cache_contains(f->c, "k2"));
    hyd_cache_stats_t st;
    hyd_cache_stats(f->c, &st);
    assert_int_equal(st.evictions, 2);
    assert_int_equal(st.entries, 3);
    assert_true((uint64_t)st.bytes_used <= 3 * one);
}

static size_t count_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += strstr(de->d_name, ".hc") != NULL;
    closedir(d);
    return n;
}

static void test_hyd_cache_bound_holds_on_disk(void **state)
{
    fx_t *f = *state;
    size_t bound = 10000;
    open_cache(f, bound);
    char key[32];
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "key-%02d", i);
        put(f, key, 900 + (size_t)i * 7, (uint8_t)i);
        hyd_cache_stats_t st;
        hyd_cache_stats(f->c, &st);
        assert_true((uint64_t)st.bytes_used <= bound);
    }
    /* An entry larger than the whole bound is refused. */
    uint8_t *big = calloc(1, bound);
    assert_non_null(big);
    hyd_cache_file_t hf;
    assert_int_equal(hyd_cache_write(f->c, "big", big, bound, &hf), ST_E_TOO_LARGE);
    free(big);
    close_cache(f); /* waits for the unlinks */
    open_cache(f, bound);
    hyd_cache_stats_t st;
    hyd_cache_stats(f->c, &st);
    assert_int_equal(count_files(f->dir), (size_t)st.entries);
    assert_true((uint64_t)st.bytes_used <= bound);
    assert_true(hyd_cache_contains(f->c, "key-49"));
    assert_false(hyd_cache_contains(f->c, "key-00"));
}

static void set_mtime(fx_t *f, const char *key, time_t sec)
{
    char path[512];
    hyd_cache_path(f->c, key, path, sizeof(path));
    struct timespec ts[2] = {{sec, 0}, {sec, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void test_hyd_cache_open_rebuilds_lru_after_restart(void **state)
{
    fx_t *f = *state;
    size_t one = entry_size("k0", 1000);
    open_cache(f, 3 * one);
    put(f, "k0", 1000, 0);
    put(f, "k1", 1000, 1);
    put(f, "k2", 1000, 2);
    /* Recency is the file's mtime: make the puts look old, then touch k0. */
    set_mtime(f, "k0", 1000);
    set_mtime(f, "k1", 2000);
    set_mtime(f, "k2", 3000);
    assert_int_equal(get(f, "k0", 0), 0);
    close_cache(f);
    /* A stray temporary file and a foreign file. */
    char p[512];
    snprintf(p, sizeof(p), "%s/00000000000000ff.tmp", f->dir);
    FILE *t = fopen(p, "w");
    assert_non_null(t);
    fputs("partial", t);
    fclose(t);
    open_cache(f, 3 * one);
    assert_int_equal(access(p, F_OK), -1);
    hyd_cache_stats_t st;
    hyd_cache_stats(f->c, &st);
    assert_int_equal(st.entries, 3);
    assert_int_equal(get(f, "k2", 0), 0);
    assert_int_equal(f->get_data[0], 2);
    /* k1 is the least recently used after the restart. */
    put(f, "k3", 1000, 3);
    assert_false(hyd_cache_contains(f->c, "k1"));
    assert_true(hyd_cache_contains(f->c, "k0"));
    /* A smaller bound at the next start evicts down to it, oldest first. */
    close_cache(f);
    open_cache(f, one);
    hyd_cache_stats(f->c, &st);
    assert_int_equal(st.entries, 1);
    assert_true(hyd_cache_contains(f->c, "k3"));
    close_cache(f);
    assert_int_equal(count_files(f->dir), 1);
}

static void test_hyd_cache_corrupt_entry_detected_and_replaced(void **state)
{
    fx_t *f = *state;
    open_cache(f, 1 << 20);
    put(f, "obj@4096", 5000, 0x5a);
    char path[512];
    hyd_cache_path(f->c, "obj@4096", path, sizeof(path));
    assert_true(path[0] != 0);
    /* Flip one data byte on disk. */
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b = 0;
    assert_int_equal(pwrite(fd, &b, 1, HDR + 8 + 100), 1);
    close(fd);
    assert_int_equal(get(f, "obj@4096", 0), ST_E_CORRUPT);
    assert_false(hyd_cache_contains(f->c, "obj@4096"));
    /* The reader refetches and puts it again: served intact. */
    put(f, "obj@4096", 5000, 0x5a);
    assert_int_equal(get(f, "obj@4096", 0), 0);
    assert_int_equal(f->get_data[100], 0x5a);
    close_cache(f);
    assert_int_equal(count_files(f->dir), 1); /* the corrupt file is gone */
    /* A damaged header is dropped at the next start. */
    open_cache(f, 1 << 20);
    hyd_cache_path(f->c, "obj@4096", path, sizeof(path));
    close_cache(f);
    fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "X", 1, 0), 1);
    close(fd);
    open_cache(f, 1 << 20);
    assert_false(hyd_cache_contains(f->c, "obj@4096"));
    assert_int_equal(count_files(f->dir), 0);
}

/* Cut the entry file of key to len bytes (0: keep the size) and zero
 * [zero_from, its end). */
static void tear(fx_t *f, const char *key, off_t len, off_t zero_from)
{
    char path[512];
    hyd_cache_path(f->c, key, path, sizeof(path));
    assert_true(path[0] != 0);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    if (len)
        assert_int_equal(ftruncate(fd, len), 0);
    static const uint8_t zeros[8192];
    for (off_t at = zero_from; at < (len ? len : sb.st_size); at += (off_t)sizeof(zeros)) {
        size_t n = (size_t)((len ? len : sb.st_size) - at);
        n = n < sizeof(zeros) ? n : sizeof(zeros);
        assert_int_equal(pwrite(fd, zeros, n, at), (ssize_t)n);
    }
    close(fd);
}

/* Entries are written without fsync: a crash may leave a file short, or at
 * its size with zeros where the data did not reach the disk. Both are
 * refused (never returned as data) and removed, at a get or at the rebuild. */
static void test_hyd_cache_torn_entry_refused(void **state)
{
    fx_t *f = *state;
    const char *key = "obj@0";
    off_t full = (off_t)entry_size(key, 5000);
    open_cache(f, 1 << 20);
    put(f, key, 5000, 0x11);
    tear(f, key, full - 3000, full); /* short */
    assert_int_equal(get(f, key, 0), ST_E_CORRUPT);
    assert_false(hyd_cache_contains(f->c, key));
    put(f, key, 5000, 0x11);
    tear(f, key, 0, full - 1000); /* its size, a zeroed tail */
    assert_int_equal(get(f, key, 0), ST_E_CORRUPT);
    put(f, key, 5000, 0x11);
    tear(f, key, 0, 0); /* all zeros */
    assert_int_equal(get(f, key, 0), ST_E_CORRUPT);
    hyd_cache_stats_t st;
    hyd_cache_stats(f->c, &st);
    assert_int_equal(st.corrupt, 3);
    assert_int_equal(st.hits, 0);
    /* Written with the checksum the caller computed (the reader's path):
     * served, and refused once torn. */
    uint8_t d[5000];
    memset(d, 0x22, sizeof(d));
    uint32_t crc = st_crc32c(0, d, sizeof(d));
    hyd_cache_file_t hf;
    assert_int_equal(hyd_cache_write_crc(f->c, "obj@9", d, sizeof(d), crc, &hf), 0);
    hyd_cache_add(f->c, &hf);
    assert_int_equal(get(f, "obj@9", crc), 0);
    assert_memory_equal(f->get_data, d, sizeof(d));
    tear(f, "obj@9", 0, full - 1);
    assert_int_equal(get(f, "obj@9", crc), ST_E_CORRUPT);
    /* A file cut short while the broker was down is dropped by the rebuild. */
    put(f, key, 5000, 0x11);
    tear(f, key, full - 1, full);
    close_cache(f);
    open_cache(f, 1 << 20);
    assert_false(hyd_cache_contains(f->c, key));
    assert_int_equal(count_files(f->dir), 0);
}

static void test_hyd_cache_put_replaces_same_key(void **state)
{
    fx_t *f = *state;
    open_cache(f, 1 << 20);
    put(f, "k", 100, 1);
    put(f, "k", 200, 2);
    hyd_cache_stats_t st;
    hyd_cache_stats(f->c, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes_used, (int64_t)entry_size("k", 200));
    assert_int_equal(get(f, "k", 0), 0);
    assert_int_equal(f->get_len, 200);
    close_cache(f);
    assert_int_equal(count_files(f->dir), 1);
}

/* Does dir's filesystem take O_DIRECT writes and keep its pages apart from
 * memory (not tmpfs, whose files are their pages)? */
static bool direct_io_here(const char *dir)
{
    struct statfs sf;
    if (statfs(dir, &sf) != 0 || sf.f_type == 0x01021994 /* TMPFS_MAGIC */)
        return false;
    char p[512];
    snprintf(p, sizeof(p), "%s/probe", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_DIRECT, 0644);
    if (fd < 0)
        return false;
    void *b = NULL;
    bool ok = posix_memalign(&b, 4096, 4096) == 0;
    if (ok) {
        memset(b, 0, 4096);
        ok = pwrite(fd, b, 4096, 0) == 4096;
    }
    free(b);
    close(fd);
    unlink(p);
    return ok;
}

/* Pages of the file at path (of size bytes, checked) in the page cache. */
static size_t resident_pages(const char *path, size_t size)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    assert_int_equal((size_t)sb.st_size, size);
    void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    size_t pages = (size + 4095) / 4096, resident = 0;
    unsigned char *vec = malloc(pages);
    assert_non_null(vec);
    assert_int_equal(mincore(m, size, vec), 0);
    for (size_t i = 0; i < pages; i++)
        resident += vec[i] & 1;
    free(vec);
    munmap(m, size);
    close(fd);
    return resident;
}

/* A chunk written to the cache takes no page-cache page (O_DIRECT): a replay
 * neither pays a fresh page per 4 KiB (a host fault on a VM that reports free
 * pages) nor pushes the hot segments out. The file is exactly its entry (the
 * block padding of the direct write is cut) and reads back as written, also
 * past the page cache (a warm replay: one direct read of the whole file). */
static void test_hyd_cache_entry_written_past_page_cache(void **state)
{
    fx_t *f = *state;
    open_cache(f, 8 << 20);
    if (!direct_io_here(f->dir)) {
        fprintf(stderr, "# skipped: %s has no O_DIRECT (or is tmpfs)\n", f->dir);
        return;
    }
    size_t len = 1000003; /* not a multiple of any block size */
    uint8_t *d = malloc(len);
    assert_non_null(d);
    for (size_t i = 0; i < len; i++)
        d[i] = (uint8_t)(i * 131 + 7);
    uint32_t crc = st_crc32c(0, d, len);
    hyd_cache_file_t hf;
    assert_int_equal(hyd_cache_write_crc(f->c, "obj@1", d, len, crc, &hf), 0);
    assert_int_equal(hf.size, entry_size("obj@1", len));
    hyd_cache_add(f->c, &hf);
    char path[512];
    hyd_cache_path(f->c, "obj@1", path, sizeof(path));
    assert_int_equal(resident_pages(path, entry_size("obj@1", len)), 0);
    /* Read back past the page cache too, header included: one direct read. */
    assert_int_equal(get(f, "obj@1", crc), 0);
    assert_int_equal(f->get_len, len);
    assert_memory_equal(f->get_data, d, len);
    assert_int_equal(resident_pages(path, entry_size("obj@1", len)), 0);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hyd_cache_get_returns_what_was_put, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hyd_cache_add_evicts_least_recently_used, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hyd_cache_bound_holds_on_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hyd_cache_open_rebuilds_lru_after_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hyd_cache_corrupt_entry_detected_and_replaced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hyd_cache_put_replaces_same_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hyd_cache_torn_entry_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hyd_cache_entry_written_past_page_cache, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
