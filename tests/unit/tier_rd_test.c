/* tier_rd_test.c - hydration (tiering/tier_rd.c) on one loop over a real
 * index and the file:// object store, with no sleeps: every ranged GET the
 * shard sends is counted and its range kept, to prove one GET per chunk
 * however reads and the read-ahead walk interleave.
 *
 * The interleavings are made, not waited for: the link wraps
 * idx_lookup_offset (-Wl,--wrap, tests/unit/tiering.cmake) and, right after
 * the read-ahead walk submits the lookup of a chosen offset, starts a read.
 * The index answers in submission order, so that read's lookup is answered
 * just after the walk's: e.g. while the walk holds the read's chunk in the
 * window it is building (between two of its lookups), the case f689bd6
 * fixed (the read downloaded the chunk alone, then the window again). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "core/part.h"
#include "index/idx.h"
#include "tests/support/tobj.h"
#include "tiering/tier.h"
#include "tiering/tier_int.h"

#define N_CHUNKS 8 /* one batch of 20 records each: chunk k holds [20k, 20k + 19] */

/* ---- The wraps: lookups observed (one may start a read), GETs counted ---- */

__typeof__(idx_lookup_offset) __real_idx_lookup_offset, __wrap_idx_lookup_offset;
__typeof__(obj_get_range) __real_obj_get_range, __wrap_obj_get_range;

typedef struct {
    uint64_t pos, len;
} range_t;

static struct {
    int64_t trip_offset; /* -1: none */
    void (*trip)(void);
    range_t gets[64];
    int n_gets;
} w;

int __wrap_idx_lookup_offset(
    idx_client_t *c, const char *topic, int32_t partition, int64_t offset, idx_loc_cb cb, void *arg)
{
    int rc = __real_idx_lookup_offset(c, topic, partition, offset, cb, arg);
    if (rc == 0 && offset == w.trip_offset) {
        w.trip_offset = -1;
        w.trip();
    }
    return rc;
}

int __wrap_obj_get_range(
    obj_store_t *s, const char *k, uint64_t pos, uint64_t n, obj_cb cb, void *a, obj_req_t **o)
{
    int rc = __real_obj_get_range(s, k, pos, n, cb, a, o);
    if (rc == 0) {
        assert_true(w.n_gets < 64);
        w.gets[w.n_gets++] = (range_t){pos, n};
    }
    return rc;
}

/* ---- Fixture: a shard with its loop, index client and store ---- */

/* What one read answered. */
typedef struct {
    bool is_done;
    int status;
    int64_t first; /* baseOffset of the first batch answered */
    size_t len;
} read_t;


typedef struct {
    char dir[64];
    uv_loop_t loop;
    obj_store_t *store;
    idx_t *idx;
    tier_shard_t ts;
    tobj_buf_t obj;
    tier_seg_info_t info;
} fx_t;

static fx_t *fx; /* for the trips */

static void noop(void *arg)
{
    (void)arg;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/tier_rd_test.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char url[160], path[128], err[256], key[512];
    snprintf(path, sizeof(path), "%s/arch", f->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(url, sizeof(url), "file://%s", path);
    snprintf(path, sizeof(path), "%s/idx.db", f->dir);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    obj_config_t oc = {.url = url};
    assert_int_equal(obj_store_new(&f->loop, &oc, &f->store, err, sizeof(err)), 0);
    assert_int_equal(idx_open(path, &f->idx, err, sizeof(err)), 0);
    f->ts.loop = &f->loop;
    f->ts.store = f->store;
    assert_int_equal(idx_client_new(f->idx, &f->loop, &f->ts.idx), 0);
    /* One object of t-0, a chunk (zstd frame) per batch. */
    assert_int_equal(tobj_build(0, N_CHUNKS, 1, &f->obj, &f->info), 0);
    assert_int_equal(f->info.n_chunks, N_CHUNKS);
    tier_object_key("t", 0, 0, N_CHUNKS * 20 - 1, 0, key, sizeof(key));
    assert_int_equal(tobj_put(&f->loop, f->store, key, f->obj.p, f->obj.len), 0);
    assert_int_equal(tobj_index(&f->loop, f->ts.idx, "t", 0, key, &f->info), 0);
    memset(&w, 0, sizeof(w));
    w.trip_offset = -1;
    fx = f;
    *state = f;
    return 0;
}

static void on_read_closed(tier_shard_t *ts, void *arg)
{
    (void)ts;
    *(bool *)arg = true;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    bool is_closed = false;
    tier_read_close(&f->ts, on_read_closed, &is_closed);
    while (!is_closed)
        uv_run(&f->loop, UV_RUN_ONCE);
    idx_client_close(f->ts.idx, noop, NULL);
    obj_store_close(f->store, noop, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    idx_close(f->idx);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    tier_seg_info_fini(&f->info);
    free(f->obj.p);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* ---- Reads ---- */

static void on_read(void *arg, int status, uint8_t *data, size_t len)
{
    read_t *r = arg;
    r->is_done = true;
    r->status = status;
    r->len = len;
    r->first = -1;
    if (data && len >= 8) {
        r->first = 0;
        for (int i = 0; i < 8; i++)
            r->first = r->first << 8 | data[i];
    }
    free(data);
}

/* Start a read of one batch at offset (a deadline far off: never reached). */
static void start_read(fx_t *f, int64_t offset, read_t *r)
{
    *r = (read_t){0};
    assert_int_equal(tier_read_until(&f->ts, "t", 0, offset, 1, part_now_ms() + 600000, on_read, r),
                     0);
}

static void wait_read(fx_t *f, read_t *r, int64_t want_first)
{
    while (!r->is_done)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(r->status, 0);
    assert_int_equal(r->first, want_first);
}

static const tier_seg_chunk_t *chunk(const fx_t *f, int k)
{
    return &f->info.chunks[k];
}

/* No byte of a chunk was fetched twice, and every chunk was fetched. */
static void check_each_chunk_fetched_once(const fx_t *f)
{
    for (int k = 0; k < N_CHUNKS; k++) {
        const tier_seg_chunk_t *c = chunk(f, k);
        int n = 0;
        for (int g = 0; g < w.n_gets; g++)
            n += w.gets[g].pos <= c->obj_pos && c->obj_pos < w.gets[g].pos + w.gets[g].len;
        if (n != 1)
            fail_msg("chunk %d (pos %llu) fetched by %d GETs of %d", k,
                     (unsigned long long)c->obj_pos, n, w.n_gets);
    }
}

/* ---- Tests ---- */

static read_t r_window, r_running;

static void trip_read_c5(void)
{
    start_read(fx, chunk(fx, 5)->first_offset, &r_running);
}

static void trip_read_c2(void)
{
    start_read(fx, chunk(fx, 2)->first_offset, &r_window);
    w.trip_offset = chunk(fx, N_CHUNKS - 1)->last_offset + 1; /* the walk's last lookup */
    w.trip = trip_read_c5;
}

/* A sequential replay: chunk 0 is read alone (a new position), the read of
 * chunk 1 starts the read-ahead walk, which builds one window of chunks
 * 1..7. A read of chunk 2 answered while the walk holds chunk 2 in that
 * window (it passed it, nothing queued yet) parks and joins the window; a
 * read of chunk 5 answered just after the window is queued waits for it;
 * later reads come from the download kept in memory. Two GETs in all, each
 * chunk in one: before f689bd6 the read of chunk 2 fetched it alone too. */
static void test_tier_rd_read_in_window_being_built_joins_it(void **state)
{
    fx_t *f = *state;
    read_t r0, r1;
    start_read(f, 0, &r0);
    wait_read(f, &r0, 0);
    assert_int_equal(w.n_gets, 1);

    /* The walk looks chunks up in order from chunk 1: the lookup of chunk 2
     * follows the one that put chunk 1 in the window; the lookup past the
     * last chunk ends the window and queues it. */
    w.trip_offset = chunk(f, 2)->first_offset;
    w.trip = trip_read_c2;
    start_read(f, chunk(f, 1)->first_offset, &r1);
    wait_read(f, &r1, chunk(f, 1)->first_offset);
    wait_read(f, &r_window, chunk(f, 2)->first_offset);
    assert_true(w.trip_offset < 0 && w.trip == trip_read_c5); /* both reads were started */
    wait_read(f, &r_running, chunk(f, 5)->first_offset);
    if (w.n_gets != 2)
        fail_msg("%d GETs for %d chunks: a chunk was downloaded twice", w.n_gets, N_CHUNKS);
    check_each_chunk_fetched_once(f);
    assert_int_equal(f->ts.stats.downloads, 2);
    assert_int_equal(f->ts.stats.readahead_downloads, 1);

    /* The rest of the replay: from memory, no GET. */
    for (int k = 6; k < N_CHUNKS; k++) {
        read_t r;
        start_read(f, chunk(f, k)->first_offset, &r);
        wait_read(f, &r, chunk(f, k)->first_offset);
    }
    assert_int_equal(w.n_gets, 2);
    int64_t frames = 0;
    for (int k = 0; k < N_CHUNKS; k++)
        frames += chunk(f, k)->obj_len;
    assert_int_equal(f->ts.stats.downloaded_bytes, frames);
}

static void close_reads(fx_t *f)
{
    bool is_closed = false;
    tier_read_close(&f->ts, on_read_closed, &is_closed);
    while (!is_closed)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void open_cache(fx_t *f)
{
    char dir[96], err[256];
    snprintf(dir, sizeof(dir), "%s/cache", f->dir);
    tier_read_opts_t o = {.cache_dir = dir, .cache_bytes = 64u << 20};
    assert_int_equal(tier_read_open(&f->ts, &o, err, sizeof(err)), 0);
}

static void replay(fx_t *f)
{
    for (int k = 0; k < N_CHUNKS; k++) {
        read_t r;
        start_read(f, chunk(f, k)->first_offset, &r);
        wait_read(f, &r, chunk(f, k)->first_offset);
    }
}

/* A warm replay (every chunk in the chunk cache, none in memory: the reader
 * restarted) reads the cached chunks ahead of the reader: from the third
 * read on (the first is a new position, the second starts the read-ahead)
 * each chunk was read from its file while the reader was still on the chunk
 * before, and no GET is made. Before this, each read waited for its own
 * cache read (cache_ahead_hits stayed 0). */
static void test_tier_rd_warm_replay_reads_cache_ahead(void **state)
{
    fx_t *f = *state;
    open_cache(f);
    replay(f);      /* cold: downloads, whose chunks go to the cache */
    close_reads(f); /* waits for the cache files; forgets what is in memory */
    open_cache(f);
    int gets = w.n_gets;
    int64_t hits = f->ts.stats.cache_hits;
    replay(f);
    assert_int_equal(w.n_gets, gets);
    assert_int_equal(f->ts.stats.cache_hits - hits, N_CHUNKS);
    assert_int_equal(f->ts.stats.cache_ahead_hits, N_CHUNKS - 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tier_rd_read_in_window_being_built_joins_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tier_rd_warm_replay_reads_cache_ahead, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
