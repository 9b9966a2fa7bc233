/* idx_test.c - the remote index (index/idx): every operation through the
 * submit/callback API on a real loop, lookups at and between chunk and
 * segment boundaries, timestamps that go backwards, paging, deletes, many
 * segments with query plans that search indexes (never scan), persistence
 * across reopen, concurrent clients on two loops, and clear errors for a
 * corrupt or foreign database file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/st_assert.h"
#include "index/idx_int.h"

/* ---- Fixture ---- */

typedef struct {
    char dir[64];
    char path[96];
    idx_t *idx;
    uv_loop_t loop;
    idx_client_t *cl;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/idx_test.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/index.db", f->dir);
    char err[256];
    assert_int_equal(idx_open(f->path, &f->idx, err, sizeof err), 0);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(idx_client_new(f->idx, &f->loop, &f->cl), 0);
    *state = f;
    return 0;
}

static void closed(void *arg)
{
    *(bool *)arg = true;
}

static void close_client(uv_loop_t *loop, idx_client_t *cl)
{
    bool is_closed = false;
    idx_client_close(cl, closed, &is_closed);
    while (!is_closed)
        uv_run(loop, UV_RUN_ONCE);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->cl)
        close_client(&f->loop, f->cl);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    idx_close(f->idx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* ---- Synchronous wrappers: submit, run the loop until the callback ---- */

typedef struct {
    bool is_done;
    int status;
    idx_loc_t loc;
    char topic[256], key[1100];
    int64_t off;
    idx_segment_t segs[64];
    size_t n;
    char **keys;
    char next_key[1100];
    bool has_next;
    uv_thread_t cb_thread;
} res_t;

static void on_done(void *arg, int status)
{
    res_t *r = arg;
    r->status = status;
    r->cb_thread = uv_thread_self();
    r->is_done = true;
}

static void on_loc(void *arg, int status, const idx_loc_t *loc)
{
    res_t *r = arg;
    r->status = status;
    r->cb_thread = uv_thread_self();
    if (status == 0) {
        r->loc = *loc;
        snprintf(r->topic, sizeof r->topic, "%s", loc->seg.topic);
        snprintf(r->key, sizeof r->key, "%s", loc->seg.object_key);
        r->loc.seg.topic = r->topic;
        r->loc.seg.object_key = r->key;
    } else {
        assert_null(loc);
    }
    r->is_done = true;
}

static void on_off(void *arg, int status, int64_t off)
{
    res_t *r = arg;
    r->status = status;
    r->off = off;
    r->is_done = true;
}

static void on_segs(void *arg, int status, const idx_segment_t *segs, size_t n, int64_t next)
{
    res_t *r = arg;
    r->status = status;
    assert_true(n <= 64);
    if (n > 0)
        memcpy(r->segs, segs, n * sizeof *segs);
    for (size_t i = 0; i < n; i++) { /* keep only the fields we compare */
        r->segs[i].topic = NULL;
        r->segs[i].object_key = NULL;
    }
    r->n = n;
    r->off = next;
    r->is_done = true;
}

static void on_keys(void *arg, int status, const char *const *keys, size_t n, const char *next)
{
    res_t *r = arg;
    r->status = status;
    r->keys = calloc(n + 1, sizeof *r->keys);
    for (size_t i = 0; i < n; i++)
        r->keys[i] = strdup(keys[i]);
    r->n = n;
    r->has_next = next != NULL;
    if (next)
        snprintf(r->next_key, sizeof r->next_key, "%s", next);
    r->is_done = true;
}

static void free_keys(res_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->keys[i]);
    free(r->keys);
    r->keys = NULL;
}

static void wait_for(uv_loop_t *loop, res_t *r)
{
    while (!r->is_done)
        uv_run(loop, UV_RUN_ONCE);
}

/* Segment [base, base + n_chunks * per - 1] of n_chunks chunks of per offsets;
 * chunk i has max_ts from ts[i] (or base + offset when ts is NULL). */
static int add_seg_on(uv_loop_t *loop,
                      idx_client_t *cl,
                      const char *topic,
                      int32_t part,
                      int64_t base,
                      int n_chunks,
                      int64_t per,
                      const int64_t *ts)
{
    idx_chunk_t ch[64];
    assert_true(n_chunks <= 64);
    for (int i = 0; i < n_chunks; i++) {
        ch[i] = (idx_chunk_t){
            .first_offset = base + i * per,
            .last_offset = base + (i + 1) * per - 1,
            .first_ts = ts ? ts[i] - 1 : base + i * per,
            .max_ts = ts ? ts[i] : base + (i + 1) * per - 1,
            .obj_pos = i * 1000,
            .obj_len = 1000,
            .raw_len = 4000,
            .checksum = (uint32_t)(base * 31 + i),
        };
    }
    char key[256];
    snprintf(key, sizeof key, "pfx/%s/%d/%020lld-%020lld-1.seg.zst", topic, part, (long long)base,
             (long long)(base + n_chunks * per - 1));
    idx_segment_t s = {
        .topic = topic,
        .partition = part,
        .base_offset = base,
        .last_offset = base + n_chunks * per - 1,
        .base_ts = ch[0].first_ts,
        .max_ts = ch[n_chunks - 1].max_ts,
        .size = n_chunks * 1000 + 17,
        .object_key = key,
        .checksum = 0xabcdef01u,
        .term = 1,
    };
    res_t r = {0};
    int rc = idx_segment_add(cl, &s, ch, (size_t)n_chunks, on_done, &r);
    if (rc != 0)
        return rc;
    wait_for(loop, &r);
    return r.status;
}

static int add_seg(fx_t *f, const char *topic, int32_t part, int64_t base, int n, int64_t per)
{
    return add_seg_on(&f->loop, f->cl, topic, part, base, n, per, NULL);
}

static int lookup(fx_t *f, const char *topic, int32_t part, int64_t off, res_t *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(idx_lookup_offset(f->cl, topic, part, off, on_loc, r), 0);
    wait_for(&f->loop, r);
    return r->status;
}

static int lookup_ts(fx_t *f, const char *topic, int32_t part, int64_t ts, res_t *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(idx_lookup_time(f->cl, topic, part, ts, on_loc, r), 0);
    wait_for(&f->loop, r);
    return r->status;
}

static int64_t edge(fx_t *f, const char *topic, int32_t part, bool is_high)
{
    res_t r = {0};
    assert_int_equal(is_high ? idx_high_offset(f->cl, topic, part, on_off, &r)
                             : idx_low_offset(f->cl, topic, part, on_off, &r),
                     0);
    wait_for(&f->loop, &r);
    assert_int_equal(r.status, 0);
    return r.off;
}

/* ---- Tests ---- */

static void test_idx_lookup_offset_boundaries(void **state)
{
    fx_t *f = *state;
    /* Segments [100, 139], [140, 199] (4 and 3 chunks). */
    assert_int_equal(add_seg(f, "orders", 3, 100, 4, 10), 0);
    assert_int_equal(add_seg(f, "orders", 3, 140, 3, 20), 0);
    res_t r;
    assert_int_equal(lookup(f, "orders", 3, 99, &r), ST_E_RANGE);
    assert_int_equal(lookup(f, "orders", 3, 200, &r), ST_E_RANGE);
    assert_int_equal(lookup(f, "orders", 4, 120, &r), ST_E_RANGE); /* other partition */
    assert_int_equal(lookup(f, "other", 3, 120, &r), ST_E_RANGE);
    for (int64_t o = 100; o < 200; o++) {
        assert_int_equal(lookup(f, "orders", 3, o, &r), 0);
        bool is_first = o < 140;
        int64_t per = is_first ? 10 : 20, base = is_first ? 100 : 140;
        int64_t i = (o - base) / per;
        assert_int_equal(r.loc.chunk.first_offset, base + i * per);
        assert_int_equal(r.loc.chunk.last_offset, base + (i + 1) * per - 1);
        assert_int_equal(r.loc.chunk.obj_pos, i * 1000);
        assert_int_equal(r.loc.chunk.obj_len, 1000);
        assert_int_equal(r.loc.chunk.raw_len, 4000);
        assert_int_equal(r.loc.chunk.checksum, (uint32_t)(base * 31 + i));
        assert_int_equal(r.loc.seg.base_offset, base);
        assert_int_equal(r.loc.seg.partition, 3);
        assert_string_equal(r.loc.seg.topic, "orders");
        assert_int_equal(r.loc.seg.checksum, 0xabcdef01u);
        assert_int_equal(r.loc.seg.term, 1);
        assert_int_equal(r.loc.seg.state, IDX_SEG_LIVE);
        assert_int_equal(r.loc.seg.size, (is_first ? 4 : 3) * 1000 + 17);
        assert_non_null(strstr(r.loc.seg.object_key, is_first ? "00100-" : "00140-"));
        assert_true(uv_thread_equal(&r.cb_thread, &(uv_thread_t){uv_thread_self()}));
    }
    assert_int_equal(edge(f, "orders", 3, true), 199);
    assert_int_equal(edge(f, "orders", 3, false), 100);
    assert_int_equal(edge(f, "orders", 9, true), -1);
    assert_int_equal(edge(f, "orders", 9, false), -1);
}

static void test_idx_lookup_offset_gaps(void **state)
{
    fx_t *f = *state;
    /* Chunks with a hole inside a segment, and a hole between segments. */
    idx_chunk_t ch[2] = {
        {.first_offset = 0, .last_offset = 9, .obj_pos = 0, .obj_len = 10, .max_ts = 5},
        {.first_offset = 20, .last_offset = 29, .obj_pos = 10, .obj_len = 10, .max_ts = 6},
    };
    idx_segment_t s = {.topic = "t",
                       .partition = 0,
                       .base_offset = 0,
                       .last_offset = 29,
                       .size = 40,
                       .object_key = "k0"};
    res_t r = {0};
    assert_int_equal(idx_segment_add(f->cl, &s, ch, 2, on_done, &r), 0);
    wait_for(&f->loop, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(add_seg(f, "t", 0, 50, 2, 10), 0); /* [50, 69] */
    assert_int_equal(lookup(f, "t", 0, 9, &r), 0);
    assert_int_equal(r.loc.chunk.first_offset, 0);
    for (int64_t o = 10; o < 20; o++) {
        assert_int_equal(lookup(f, "t", 0, o, &r), 0);
        assert_int_equal(r.loc.chunk.first_offset, 20);
        assert_string_equal(r.loc.seg.object_key, "k0");
    }
    for (int64_t o = 30; o < 50; o++) {
        assert_int_equal(lookup(f, "t", 0, o, &r), 0);
        assert_int_equal(r.loc.chunk.first_offset, 50);
        assert_int_equal(r.loc.seg.base_offset, 50);
    }
    assert_int_equal(lookup(f, "t", 0, 70, &r), ST_E_RANGE);
}

static void test_idx_lookup_time(void **state)
{
    fx_t *f = *state;
    /* Timestamps go backwards inside and across segments. */
    const int64_t t0[3] = {100, 300, 200};
    const int64_t t1[3] = {250, 400, 350};
    const int64_t t2[2] = {390, 500};
    assert_int_equal(add_seg_on(&f->loop, f->cl, "t", 1, 0, 3, 10, t0), 0);
    assert_int_equal(add_seg_on(&f->loop, f->cl, "t", 1, 30, 3, 10, t1), 0);
    assert_int_equal(add_seg_on(&f->loop, f->cl, "t", 1, 60, 2, 10, t2), 0);
    const int64_t all[8] = {100, 300, 200, 250, 400, 350, 390, 500};
    res_t r;
    for (int64_t ts = 0; ts <= 501; ts++) {
        int want = -1; /* first chunk whose max_ts >= ts */
        for (int i = 0; i < 8 && want < 0; i++)
            if (all[i] >= ts)
                want = i;
        int rc = lookup_ts(f, "t", 1, ts, &r);
        if (want < 0) {
            assert_int_equal(rc, ST_E_RANGE);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(r.loc.chunk.first_offset, want * 10);
        assert_int_equal(r.loc.chunk.max_ts, all[want]);
    }
    assert_int_equal(lookup_ts(f, "t", 2, 0, &r), ST_E_RANGE);
}

static void test_idx_add_rejects_overlap_and_bad_input(void **state)
{
    fx_t *f = *state;
    assert_int_equal(add_seg(f, "t", 0, 100, 2, 10), 0); /* [100, 119] */
    /* The same row again: idempotent. */
    assert_int_equal(add_seg(f, "t", 0, 100, 2, 10), 0);
    /* Overlapping or out of order. */
    assert_int_equal(add_seg(f, "t", 0, 110, 2, 10), ST_E_EXISTS);
    assert_int_equal(add_seg(f, "t", 0, 100, 1, 10), ST_E_EXISTS); /* same base, other key */
    assert_int_equal(add_seg(f, "t", 0, 0, 2, 10), ST_E_EXISTS);
    assert_int_equal(add_seg(f, "t", 0, 120, 2, 10), 0);
    assert_int_equal(edge(f, "t", 0, true), 139);

    /* The same object key for another partition violates uniqueness. */
    idx_chunk_t ch = {.first_offset = 500, .last_offset = 509, .obj_len = 10};
    idx_segment_t s = {.topic = "t",
                       .partition = 1,
                       .base_offset = 500,
                       .last_offset = 509,
                       .size = 30,
                       .object_key = "pfx/t/0/00000000000000000100-00000000000000000119-1.seg.zst"};
    res_t r = {0};
    assert_int_equal(idx_segment_add(f->cl, &s, &ch, 1, on_done, &r), 0);
    wait_for(&f->loop, &r);
    assert_int_equal(r.status, ST_E_EXISTS);
    assert_int_equal(edge(f, "t", 1, true), -1); /* rolled back */

    /* Inconsistent input is refused before it is queued. */
    s.object_key = "x";
    idx_segment_t b = s;
    idx_chunk_t c2[2] = {ch, ch};
    assert_int_equal(idx_segment_add(f->cl, &s, &ch, 0, on_done, &r), ST_E_INVAL);
    b.last_offset = 510; /* chunks do not reach it */
    assert_int_equal(idx_segment_add(f->cl, &b, &ch, 1, on_done, &r), ST_E_INVAL);
    b = s;
    b.size = 5; /* chunk outside the object */
    assert_int_equal(idx_segment_add(f->cl, &b, &ch, 1, on_done, &r), ST_E_INVAL);
    assert_int_equal(idx_segment_add(f->cl, &s, c2, 2, on_done, &r), ST_E_INVAL); /* overlap */
    b = s;
    b.topic = "";
    assert_int_equal(idx_segment_add(f->cl, &b, &ch, 1, on_done, &r), ST_E_INVAL);
    b = s;
    b.partition = -1;
    assert_int_equal(idx_segment_add(f->cl, &b, &ch, 1, on_done, &r), ST_E_INVAL);
    b = s;
    b.object_key = NULL;
    assert_int_equal(idx_segment_add(f->cl, &b, &ch, 1, on_done, &r), ST_E_INVAL);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(idx_lookup_offset(f->cl, longname, 0, 0, on_loc, &r), ST_E_INVAL);
    assert_int_equal(idx_lookup_offset(f->cl, "t", -1, 0, on_loc, &r), ST_E_INVAL);
    assert_int_equal(idx_list_segments(f->cl, "t", 0, 0, 0, on_segs, &r), ST_E_INVAL);
    assert_int_equal(idx_list_keys(f->cl, NULL, IDX_MAX_PAGE + 1, on_keys, &r), ST_E_INVAL);
}

static void test_idx_list_segments_paged(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < 25; i++)
        assert_int_equal(add_seg(f, "t", 5, i * 100, 1, 100), 0);
    assert_int_equal(add_seg(f, "t", 6, 0, 1, 10), 0);
    int64_t from = 0;
    int seen = 0, pages = 0;
    for (;;) {
        res_t r = {0};
        assert_int_equal(idx_list_segments(f->cl, "t", 5, from, 10, on_segs, &r), 0);
        wait_for(&f->loop, &r);
        assert_int_equal(r.status, 0);
        for (size_t i = 0; i < r.n; i++, seen++) {
            assert_int_equal(r.segs[i].base_offset, seen * 100);
            assert_int_equal(r.segs[i].last_offset, seen * 100 + 99);
            assert_int_equal(r.segs[i].partition, 5);
            assert_int_equal(r.segs[i].size, 1017);
        }
        pages++;
        if (r.off < 0)
            break;
        assert_int_equal(r.n, 10);
        from = r.off;
    }
    assert_int_equal(seen, 25);
    assert_int_equal(pages, 3);
    /* From the middle of a segment: segments starting at or after it. */
    res_t r = {0};
    assert_int_equal(idx_list_segments(f->cl, "t", 5, 2350, 64, on_segs, &r), 0);
    wait_for(&f->loop, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.segs[0].base_offset, 2400);
    assert_int_equal(r.off, -1);
}

static void test_idx_delete_below_and_drop(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < 5; i++) /* [0,99] [100,199] ... [400,499] */
        assert_int_equal(add_seg(f, "t", 0, i * 100, 2, 50), 0);
    assert_int_equal(add_seg(f, "t", 1, 0, 1, 10), 0);
    assert_int_equal(add_seg(f, "u", 0, 0, 1, 10), 0);

    res_t r = {0};
    assert_int_equal(idx_delete_below(f->cl, "t", 0, 250, on_keys, &r), 0);
    wait_for(&f->loop, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 2); /* [0,99], [100,199]; [200,299] straddles 250 */
    assert_non_null(strstr(r.keys[0], "/00000000000000000000-"));
    assert_non_null(strstr(r.keys[1], "/00000000000000000100-"));
    assert_false(r.has_next);
    free_keys(&r);
    res_t l;
    assert_int_equal(lookup(f, "t", 0, 150, &l), ST_E_RANGE);
    assert_int_equal(lookup(f, "t", 0, 200, &l), 0);
    assert_int_equal(edge(f, "t", 0, false), 200);

    /* At exactly a segment's end + 1 it goes; nothing below: no keys. */
    r = (res_t){0};
    assert_int_equal(idx_delete_below(f->cl, "t", 0, 300, on_keys, &r), 0);
    wait_for(&f->loop, &r);
    assert_int_equal(r.n, 1);
    free_keys(&r);
    r = (res_t){0};
    assert_int_equal(idx_delete_below(f->cl, "t", 0, 300, on_keys, &r), 0);
    wait_for(&f->loop, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 0);
    free_keys(&r);

    /* Keys of everything, paged, in byte order. */
    char *all[8];
    size_t n_all = 0;
    char after[1100] = "";
    bool has_after = false;
    for (;;) {
        r = (res_t){0};
        assert_int_equal(idx_list_keys(f->cl, has_after ? after : NULL, 2, on_keys, &r), 0);
        wait_for(&f->loop, &r);
        assert_int_equal(r.status, 0);
        for (size_t i = 0; i < r.n; i++)
            all[n_all++] = strdup(r.keys[i]);
        free_keys(&r);
        if (!r.has_next)
            break;
        snprintf(after, sizeof after, "%s", r.next_key);
        has_after = true;
    }
    assert_int_equal(n_all, 4); /* t/0: 2 segments, t/1, u/0 */
    for (size_t i = 1; i < n_all; i++)
        assert_true(strcmp(all[i - 1], all[i]) < 0);
    for (size_t i = 0; i < n_all; i++)
        free(all[i]);

    /* Drop one partition, then a whole topic. */
    r = (res_t){0};
    assert_int_equal(idx_drop(f->cl, "t", 1, on_keys, &r), 0);
    wait_for(&f->loop, &r);
    assert_int_equal(r.n, 1);
    free_keys(&r);
    assert_int_equal(edge(f, "t", 0, true), 499);
    r = (res_t){0};
    assert_int_equal(idx_drop(f->cl, "t", -1, on_keys, &r), 0);
    wait_for(&f->loop, &r);
    assert_int_equal(r.n, 2);
    free_keys(&r);
    assert_int_equal(edge(f, "t", 0, true), -1);
    assert_int_equal(edge(f, "u", 0, true), 9);
    /* A dropped partition starts over from any offset. */
    assert_int_equal(add_seg(f, "t", 0, 0, 1, 10), 0);
}

/* Every read/write statement searches an index: no full scan, no sort. */
static void check_plans(const char *path)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    int n_checked = 0;
    for (const idx__query_t *q = idx__queries; q->name; q++) {
        char sql[1024];
        snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", q->sql);
        sqlite3_stmt *s;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
        bool is_indexed = false;
        while (sqlite3_step(s) == SQLITE_ROW) {
            const char *d = (const char *)sqlite3_column_text(s, 3);
            if (strncmp(d, "SCAN", 4) == 0 || strstr(d, "TEMP B-TREE"))
                fail_msg("%s: %s", q->name, d);
            if (strncmp(d, "SEARCH", 6) == 0 && strstr(d, "USING"))
                is_indexed = true;
        }
        sqlite3_finalize(s);
        if (strncmp(q->sql, "SELECT", 6) == 0 || strncmp(q->sql, "DELETE", 6) == 0) {
            if (!is_indexed)
                fail_msg("%s: no index search", q->name);
            n_checked++;
        }
    }
    assert_true(n_checked >= 15);
    sqlite3_close(db);
}

static void test_idx_many_segments_use_indexes(void **state)
{
    fx_t *f = *state;
    const int n_seg = 300, n_ch = 16, per = 7;
    for (int s = 0; s < n_seg; s++)
        assert_int_equal(add_seg(f, "big", 0, (int64_t)s * n_ch * per, n_ch, per), 0);
    assert_int_equal(add_seg(f, "big", 1, 0, 1, 10), 0);
    res_t r;
    int64_t end = (int64_t)n_seg * n_ch * per;
    for (int64_t o = 0; o < end; o += 13) {
        assert_int_equal(lookup(f, "big", 0, o, &r), 0);
        assert_true(r.loc.chunk.first_offset <= o && o <= r.loc.chunk.last_offset);
        assert_int_equal(r.loc.chunk.first_offset, o - o % per);
    }
    /* Timestamps equal offsets here: ts T is in the chunk holding offset T. */
    for (int64_t t = 0; t < end; t += 101) {
        assert_int_equal(lookup_ts(f, "big", 0, t, &r), 0);
        assert_true(r.loc.chunk.first_offset <= t && t <= r.loc.chunk.last_offset);
    }
    assert_int_equal(edge(f, "big", 0, true), end - 1);
    check_plans(f->path);
}

static void test_idx_persists_across_reopen(void **state)
{
    fx_t *f = *state;
    assert_int_equal(add_seg(f, "t", 0, 0, 3, 10), 0);
    assert_int_equal(add_seg(f, "t", 0, 30, 3, 10), 0);
    close_client(&f->loop, f->cl);
    idx_close(f->idx);
    char err[256];
    assert_int_equal(idx_open(f->path, &f->idx, err, sizeof err), 0);
    assert_int_equal(idx_client_new(f->idx, &f->loop, &f->cl), 0);
    res_t r;
    assert_int_equal(lookup(f, "t", 0, 45, &r), 0);
    assert_int_equal(r.loc.chunk.first_offset, 40);
    assert_int_equal(edge(f, "t", 0, true), 59);
    /* The next add continues the running max of timestamps. */
    assert_int_equal(add_seg(f, "t", 0, 60, 1, 10), 0);
    assert_int_equal(lookup_ts(f, "t", 0, 65, &r), 0);
    assert_int_equal(r.loc.chunk.first_offset, 60);
    /* WAL mode and the schema version are on disk. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), IDX_SCHEMA_VERSION);
    sqlite3_finalize(s);
    sqlite3_close(db);
}

/* ---- Two loops submitting at once ---- */

typedef struct {
    idx_t *idx;
    int32_t part;
    int n_ok;
    bool is_wrong_thread;
} worker_t;

typedef struct {
    worker_t *w;
    uv_thread_t self;
    int pending;
} wctx_t;

static void w_done(void *arg, int status)
{
    wctx_t *c = arg;
    uv_thread_t me = uv_thread_self();
    if (!uv_thread_equal(&me, &c->self))
        c->w->is_wrong_thread = true;
    if (status == 0)
        c->w->n_ok++;
    c->pending--;
}

static void w_loc(void *arg, int status, const idx_loc_t *loc)
{
    w_done(arg, status);
}

static void worker_main(void *arg)
{
    worker_t *w = arg;
    uv_loop_t loop;
    idx_client_t *cl;
    ST_VERIFY(uv_loop_init(&loop) == 0);
    ST_VERIFY(idx_client_new(w->idx, &loop, &cl) == 0);
    wctx_t c = {.w = w, .self = uv_thread_self()};
    char key[64];
    /* Submit everything at once (adds and lookups interleaved), then run. */
    for (int i = 0; i < 100; i++) {
        idx_chunk_t ch = {.first_offset = i * 10, .last_offset = i * 10 + 9, .obj_len = 10};
        snprintf(key, sizeof key, "w/%d/%d", w->part, i);
        idx_segment_t s = {.topic = "conc",
                           .partition = w->part,
                           .base_offset = i * 10,
                           .last_offset = i * 10 + 9,
                           .size = 10,
                           .object_key = key};
        ST_VERIFY(idx_segment_add(cl, &s, &ch, 1, w_done, &c) == 0);
        ST_VERIFY(idx_lookup_offset(cl, "conc", w->part, i * 10 + 5, w_loc, &c) == 0);
        c.pending += 2;
    }
    while (c.pending > 0)
        uv_run(&loop, UV_RUN_ONCE);
    bool is_closed = false;
    idx_client_close(cl, closed, &is_closed);
    while (!is_closed)
        uv_run(&loop, UV_RUN_ONCE);
    ST_VERIFY(uv_loop_close(&loop) == 0);
}

static void test_idx_two_loops_submit_concurrently(void **state)
{
    fx_t *f = *state;
    worker_t w[2] = {{.idx = f->idx, .part = 0}, {.idx = f->idx, .part = 1}};
    uv_thread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(uv_thread_create(&th[i], worker_main, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(uv_thread_join(&th[i]), 0);
    for (int i = 0; i < 2; i++) {
        /* Ops run in submission order: each lookup sees the add before it. */
        assert_int_equal(w[i].n_ok, 200);
        assert_false(w[i].is_wrong_thread);
        assert_int_equal(edge(f, "conc", i, true), 999);
    }
}

static void test_idx_close_with_pending_ops(void **state)
{
    fx_t *f = *state;
    res_t r[3] = {{0}};
    assert_int_equal(idx_high_offset(f->cl, "t", 0, on_off, &r[0]), 0);
    assert_int_equal(idx_lookup_offset(f->cl, "t", 0, 0, on_loc, &r[1]), 0);
    assert_int_equal(idx_list_keys(f->cl, NULL, 10, on_keys, &r[2]), 0);
    bool is_closed = false;
    idx_client_close(f->cl, closed, &is_closed);
    assert_int_equal(idx_high_offset(f->cl, "t", 0, on_off, &r[0]), ST_E_CLOSED);
    while (!is_closed)
        uv_run(&f->loop, UV_RUN_ONCE);
    f->cl = NULL;
    assert_true(r[0].is_done && r[1].is_done && r[2].is_done);
    assert_int_equal(r[0].off, -1);
    assert_int_equal(r[1].status, ST_E_RANGE);
    assert_int_equal(r[2].n, 0);
    free_keys(&r[2]);
}


/* ---- Bad files ---- */

typedef struct {
    bool is_done;
    int status;
    idx_aborted_t v[16];
    size_t n;
} ab_res_t;

static void on_aborted(void *arg, int status, const idx_aborted_t *v, size_t n)
{
    ab_res_t *r = arg;
    r->status = status;
    assert_true(n <= 16);
    if (n)
        memcpy(r->v, v, n * sizeof(*v));
    r->n = n;
    r->is_done = true;
}

static size_t list_aborted(fx_t *f, const char *topic, int32_t part, ab_res_t *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(idx_list_aborted(f->cl, topic, part, on_aborted, r), 0);
    while (!r->is_done)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(r->status, 0);
    return r->n;
}

static int add_seg_ab(fx_t *f, int64_t base, const idx_aborted_t *ab, size_t n_ab)
{
    idx_chunk_t ch = {base, base + 9, 1, 2, 0, 100, 400, 7};
    char key[64];
    snprintf(key, sizeof key, "k/t/0/%lld.seg.zst", (long long)base);
    idx_segment_t s = {.topic = "t",
                       .partition = 0,
                       .base_offset = base,
                       .last_offset = base + 9,
                       .base_ts = 1,
                       .max_ts = 2,
                       .size = 200,
                       .object_key = key,
                       .aborted = ab,
                       .n_aborted = n_ab};
    res_t r = {0};
    int rc = idx_segment_add(f->cl, &s, &ch, 1, on_done, &r);
    if (rc != 0)
        return rc;
    wait_for(&f->loop, &r);
    return r.status;
}

/* The aborted transactions of each object: added with its row, listed in
 * marker order over the partition, checked, deleted with their segment,
 * and kept across a reopen; a version 1 index migrates to the table. */
static void test_idx_aborted_rows(void **state)
{
    fx_t *f = *state;
    ab_res_t r;
    assert_int_equal(list_aborted(f, "t", 0, &r), 0);
    idx_aborted_t a0[] = {{5, 0, 3}, {6, 2, 8}}, a2[] = {{5, 4, 21}};
    assert_int_equal(add_seg_ab(f, 0, a0, 2), 0);
    assert_int_equal(add_seg_ab(f, 10, NULL, 0), 0);
    /* A marker outside the object, out of order, or before its first offset. */
    idx_aborted_t bad1[] = {{5, 4, 31}}, bad2[] = {{5, 4, 25}, {6, 4, 22}}, bad3[] = {{5, 26, 25}};
    assert_int_equal(add_seg_ab(f, 20, bad1, 1), ST_E_INVAL);
    assert_int_equal(add_seg_ab(f, 20, bad2, 2), ST_E_INVAL);
    assert_int_equal(add_seg_ab(f, 20, bad3, 1), ST_E_INVAL);
    assert_int_equal(add_seg_ab(f, 20, a2, 1), 0);
    assert_int_equal(list_aborted(f, "t", 0, &r), 3);
    idx_aborted_t want[] = {{5, 0, 3}, {6, 2, 8}, {5, 4, 21}};
    assert_memory_equal(r.v, want, sizeof(want));
    assert_int_equal(list_aborted(f, "t", 1, &r), 0);
    /* Retention takes the first object's rows with it. */
    res_t k = {0};
    assert_int_equal(idx_delete_below(f->cl, "t", 0, 10, on_keys, &k), 0);
    wait_for(&f->loop, &k);
    assert_int_equal(k.n, 1);
    free_keys(&k);
    assert_int_equal(list_aborted(f, "t", 0, &r), 1);
    assert_int_equal(r.v[0].last_offset, 21);
    /* A version 1 index (before the table) migrates; rows then persist. */
    close_client(&f->loop, f->cl);
    idx_close(f->idx);
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DROP TABLE aborted; DROP TABLE compacted;"
                                  " UPDATE schema_version SET version = 1",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    char err[256];
    assert_int_equal(idx_open(f->path, &f->idx, err, sizeof err), 0);
    assert_int_equal(idx_client_new(f->idx, &f->loop, &f->cl), 0);
    assert_int_equal(list_aborted(f, "t", 0, &r), 0);
    assert_int_equal(add_seg_ab(f, 30, a2 /* marker 21: outside */, 1), ST_E_INVAL);
    idx_aborted_t a3[] = {{7, 12, 33}};
    assert_int_equal(add_seg_ab(f, 30, a3, 1), 0);
    close_client(&f->loop, f->cl);
    idx_close(f->idx);
    assert_int_equal(idx_open(f->path, &f->idx, err, sizeof err), 0);
    assert_int_equal(idx_client_new(f->idx, &f->loop, &f->cl), 0);
    assert_int_equal(list_aborted(f, "t", 0, &r), 1);
    assert_memory_equal(&r.v[0], &a3[0], sizeof(a3[0]));
}

/* ---- Archive compaction: the switch ---- */

static int64_t clean_end_of(fx_t *f, const char *topic, int32_t part)
{
    res_t r = {0};
    assert_int_equal(idx_clean_end(f->cl, topic, part, on_off, &r), 0);
    wait_for(&f->loop, &r);
    assert_int_equal(r.status, 0);
    return r.off;
}

static int replace(fx_t *f, const idx_replace_t *v, size_t n, int64_t clean_end)
{
    res_t r = {0};
    int rc = idx_segments_replace(f->cl, "t", 0, v, n, clean_end, on_done, &r);
    if (rc != 0)
        return rc;
    wait_for(&f->loop, &r);
    return r.status;
}

static size_t all_keys(fx_t *f, res_t *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(idx_list_keys(f->cl, NULL, 100, on_keys, r), 0);
    wait_for(&f->loop, r);
    assert_int_equal(r->status, 0);
    return r->n;
}

/* Objects [0,29] [30,59] [60,89] of 3 chunks of 10 offsets, max_ts = last
 * offset; the first and last are replaced by compacted rewrites with gaps
 * and lower timestamps in one transaction: lookups, timestamp lookups (the
 * running maxima recomputed), keys, aborted rows and the clean end follow;
 * a replacement whose old row is gone changes nothing. */
static void test_idx_replace_switches_in_one_transaction(void **state)
{
    fx_t *f = *state;
    for (int64_t b = 0; b < 90; b += 30)
        assert_int_equal(add_seg(f, "t", 0, b, 3, 10), 0);
    assert_int_equal(add_seg(f, "t", 1, 0, 1, 10), 0);
    assert_int_equal(clean_end_of(f, "t", 0), -1);
    res_t k;
    char old0[1100], old2[1100];
    snprintf(old0, sizeof old0, "pfx/t/0/%020d-%020d-1.seg.zst", 0, 29);
    snprintf(old2, sizeof old2, "pfx/t/0/%020d-%020d-1.seg.zst", 60, 89);
    /* [0,29] keeps offsets 0..4 and 25..29 (two chunks, max_ts 4 and 29);
     * [60,89] keeps 60 and 85..89 with max_ts 60 and 70 (below [30,59]'s 59
     * for the first). */
    idx_chunk_t c0[] = {{0, 4, 0, 4, 0, 50, 200, 1}, {25, 29, 25, 29, 50, 60, 200, 2}};
    idx_chunk_t c2[] = {{60, 60, 60, 50, 0, 40, 100, 3}, {85, 89, 85, 70, 40, 40, 100, 4}};
    idx_aborted_t ab[] = {{9, 61, 86}};
    idx_replace_t v[] = {
        {old0,
         {.topic = "t",
          .partition = 0,
          .base_offset = 0,
          .last_offset = 29,
          .base_ts = 0,
          .max_ts = 29,
          .size = 120,
          .object_key = "pfx/t/0/c0",
          .checksum = 5},
         c0,
         2},
        {old2,
         {.topic = "t",
          .partition = 0,
          .base_offset = 60,
          .last_offset = 89,
          .base_ts = 60,
          .max_ts = 70,
          .size = 90,
          .object_key = "pfx/t/0/c2",
          .checksum = 6,
          .aborted = ab,
          .n_aborted = 1},
         c2,
         2},
    };
    /* Bad input: another partition's row, overlapping or unordered rows. */
    idx_replace_t bad = v[0];
    bad.seg.partition = 1;
    assert_int_equal(replace(f, &bad, 1, 30), ST_E_INVAL);
    idx_replace_t swapped[] = {v[1], v[0]};
    assert_int_equal(replace(f, swapped, 2, 90), ST_E_INVAL);
    /* An old row that is not there (or not with these offsets): nothing changes. */
    idx_replace_t gone[] = {v[0], v[1]};
    gone[1].old_key = "pfx/t/0/nope";
    assert_int_equal(replace(f, gone, 2, 90), ST_E_NOTFOUND);
    gone[1].old_key = old0;
    gone[1].seg.base_offset = 60;
    assert_int_equal(replace(f, &gone[1], 1, 90), ST_E_NOTFOUND);
    assert_int_equal(clean_end_of(f, "t", 0), -1);
    res_t r;
    assert_int_equal(lookup(f, "t", 0, 12, &r), 0);
    assert_string_equal(r.loc.seg.object_key, old0);

    assert_int_equal(replace(f, v, 2, 90), 0);
    assert_int_equal(clean_end_of(f, "t", 0), 90);
    assert_int_equal(clean_end_of(f, "t", 1), -1);
    /* Offsets in the gaps answer the next chunk; the edges stay. */
    assert_int_equal(lookup(f, "t", 0, 12, &r), 0);
    assert_string_equal(r.loc.seg.object_key, "pfx/t/0/c0");
    assert_int_equal(r.loc.chunk.first_offset, 25);
    assert_int_equal(lookup(f, "t", 0, 61, &r), 0);
    assert_string_equal(r.loc.seg.object_key, "pfx/t/0/c2");
    assert_int_equal(r.loc.chunk.first_offset, 85);
    assert_int_equal(r.loc.chunk.obj_pos, 40);
    assert_int_equal(lookup(f, "t", 0, 45, &r), 0);
    assert_int_equal(r.loc.chunk.first_offset, 40);
    assert_int_equal(edge(f, "t", 0, false), 0);
    assert_int_equal(edge(f, "t", 0, true), 89);
    /* Time: 5..29 -> chunk [25,29]; 60 is now first reached in [50,59]
     * (max_ts 59 < 60) -> [60,60]'s max 50 < 60 -> [85,89] (70). */
    assert_int_equal(lookup_ts(f, "t", 0, 5, &r), 0);
    assert_int_equal(r.loc.chunk.first_offset, 25);
    assert_int_equal(lookup_ts(f, "t", 0, 60, &r), 0);
    assert_int_equal(r.loc.chunk.first_offset, 85);
    assert_int_equal(lookup_ts(f, "t", 0, 71, &r), ST_E_RANGE);
    /* The old keys are gone from the index (their objects are orphans now). */
    assert_int_equal(all_keys(f, &k), 4);
    for (size_t i = 0; i < k.n; i++)
        assert_true(strcmp(k.keys[i], old0) != 0 && strcmp(k.keys[i], old2) != 0);
    free_keys(&k);
    ab_res_t a;
    assert_int_equal(list_aborted(f, "t", 0, &a), 1);
    assert_memory_equal(&a.v[0], &ab[0], sizeof(ab[0]));
    /* Replacing again (the next pass) and an empty switch move the clean end. */
    v[0].old_key = "pfx/t/0/c0";
    v[0].seg.object_key = "pfx/t/0/c0b";
    assert_int_equal(replace(f, v, 1, 95), 0);
    assert_int_equal(replace(f, NULL, 0, 99), 0);
    assert_int_equal(clean_end_of(f, "t", 0), 99);
    assert_int_equal(lookup(f, "t", 0, 3, &r), 0);
    assert_string_equal(r.loc.seg.object_key, "pfx/t/0/c0b");
    /* Dropping the partition forgets its clean end. */
    r = (res_t){0};
    assert_int_equal(idx_drop(f->cl, "t", 0, on_keys, &r), 0);
    wait_for(&f->loop, &r);
    assert_int_equal(r.n, 3);
    free_keys(&r);
    assert_int_equal(clean_end_of(f, "t", 0), -1);
    check_plans(f->path);
}

/* Every chunk row of t/0 in offset order as stored: {first_offset, max_ts,
 * cum_max_ts}, and each segment row's cum_max_ts checked against its last
 * chunk's. Returns the number of chunk rows. */
static size_t stored_cums(const char *path, int64_t (*v)[3], size_t cap)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT c.first_offset, c.max_ts, c.cum_max_ts,"
                                        " s.cum_max_ts, c.first_offset = (SELECT MAX(first_offset)"
                                        " FROM chunks WHERE segment = s.id)"
                                        " FROM segments s JOIN chunks c ON c.segment = s.id"
                                        " WHERE s.topic = 't' AND s.partition = 0"
                                        " ORDER BY s.base_offset, c.first_offset",
                                        -1, &s, NULL),
                     SQLITE_OK);
    size_t n = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        assert_true(n < cap);
        for (int i = 0; i < 3; i++)
            v[n][i] = sqlite3_column_int64(s, i);
        if (sqlite3_column_int(s, 4)) /* the segment's running max is its last chunk's */
            assert_int_equal(sqlite3_column_int64(s, 3), v[n][2]);
        n++;
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

/* The stored chunk rows of t/0 are want[0..n_want) ({first_offset, max_ts,
 * cum_max_ts}, in offset order). */
static void check_cums(const char *path, const int64_t (*want)[3], size_t n_want)
{
    int64_t v[16][3];
    size_t n = stored_cums(path, v, 16);
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            if (v[i][c] != want[i][c])
                fail_msg("chunk row %zu column %d: %lld, want %lld", i, c, (long long)v[i][c],
                         (long long)want[i][c]);
}

/* t/0 as four objects [0,29] .. [90,119] of three chunks of 10 offsets;
 * chunk j of object k has max_ts ts[k][j]. */
static void add_four(fx_t *f, const int64_t (*ts)[3])
{
    for (int k = 0; k < 4; k++)
        assert_int_equal(add_seg_on(&f->loop, f->cl, "t", 0, k * 30, 3, 10, ts[k]), 0);
}

/* The replacement of old_key on t/0 by object key holding chunks c. */
static idx_replace_t repl_t0(const char *old_key, const char *key, const idx_chunk_t *c, size_t n)
{
    idx_segment_t g = {.topic = "t",
                       .base_offset = c[0].first_offset,
                       .last_offset = c[n - 1].last_offset,
                       .base_ts = c[0].first_ts,
                       .size = c[n - 1].obj_pos + c[n - 1].obj_len,
                       .object_key = key};
    for (size_t i = 0; i < n; i++)
        g.max_ts = i == 0 || c[i].max_ts > g.max_ts ? c[i].max_ts : g.max_ts;
    return (idx_replace_t){old_key, g, c, n};
}

/* The running maxima a replace stores: [0,29] holds a far-future timestamp
 * (1000) that its compacted rewrite drops, so every later row's cum_max_ts
 * must come down to the running max of what is left (a row keeping 1000
 * would send a lookup for ts 100 to [30,39]); [90,119]'s own 1200 dominates
 * what follows; the next add goes on from the replaced partition's last
 * row. Checked row by row in the database, then through lookups. */
static void test_idx_replace_stores_running_maxima(void **state)
{
    fx_t *f = *state;
    const int64_t ts[4][3] = {{5, 1000, 25}, {35, 45, 55}, {65, 60, 85}, {1200, 100, 110}};
    add_four(f, ts);
    int64_t v[16][3];
    assert_int_equal(stored_cums(f->path, v, 16), 12);
    assert_int_equal(v[5][2], 1000); /* [50,59] before: under the far-future max */
    res_t r;
    assert_int_equal(lookup_ts(f, "t", 0, 30, &r), 0);
    assert_int_equal(r.loc.chunk.first_offset, 10);

    char old0[128], old2[128];
    snprintf(old0, sizeof old0, "pfx/t/0/%020d-%020d-1.seg.zst", 0, 29);
    snprintf(old2, sizeof old2, "pfx/t/0/%020d-%020d-1.seg.zst", 60, 89);
    /* [0,29] keeps [0,9] and [20,29]; [60,89] keeps [60,69] and [80,89]. */
    idx_chunk_t c0[] = {{0, 9, 4, 5, 0, 40, 100, 1}, {20, 29, 24, 25, 40, 40, 100, 2}};
    idx_chunk_t c2[] = {{60, 69, 64, 65, 0, 40, 100, 3}, {80, 89, 84, 85, 40, 40, 100, 4}};
    idx_replace_t rv[] = {repl_t0(old0, "pfx/t/0/c0", c0, 2), repl_t0(old2, "pfx/t/0/c2", c2, 2)};
    assert_int_equal(replace(f, rv, 2, 90), 0);
    const int64_t want[][3] = {{0, 5, 5},        {20, 25, 25},    {30, 35, 35}, {40, 45, 45},
                               {50, 55, 55},     {60, 65, 65},    {80, 85, 85}, {90, 1200, 1200},
                               {100, 100, 1200}, {110, 110, 1200}};
    check_cums(f->path, want, sizeof want / sizeof want[0]);
    assert_int_equal(lookup_ts(f, "t", 0, 30, &r), 0);
    assert_int_equal(r.loc.chunk.first_offset, 30);
    assert_int_equal(lookup_ts(f, "t", 0, 80, &r), 0);
    assert_int_equal(r.loc.chunk.first_offset, 80);
    assert_int_equal(lookup_ts(f, "t", 0, 100, &r), 0);
    assert_int_equal(r.loc.chunk.first_offset, 90);
    assert_int_equal(lookup_ts(f, "t", 0, 1100, &r), 0);
    assert_int_equal(r.loc.chunk.first_offset, 90);

    /* Replacing the last row again, now with a higher max (an index row is
     * what it is told): its own rows rise; an add then continues from it. */
    rv[1].old_key = "pfx/t/0/c2";
    rv[1].seg.object_key = "pfx/t/0/c2b";
    c2[0].max_ts = 70;
    assert_int_equal(replace(f, &rv[1], 1, 95), 0);
    const int64_t t4[1] = {50};
    assert_int_equal(add_seg_on(&f->loop, f->cl, "t", 0, 120, 1, 10, t4), 0);
    size_t n = stored_cums(f->path, v, 16);
    assert_int_equal(n, 11);
    assert_int_equal(v[5][2], 70);
    assert_int_equal(v[6][2], 85);
    assert_int_equal(v[10][0], 120);
    assert_int_equal(v[10][2], 1200);
    check_plans(f->path);
}

/* Retention takes a prefix holding the partition's highest timestamp (a
 * producer's clock ahead, 1000): the rows left must not keep it in their
 * running maxima, or a time lookup lands on a chunk with no record that
 * late (ListOffsets by time then answers from the local log, past records
 * the archive holds). Rows the deleted prefix never raised stay as they
 * were. */
static void test_idx_delete_below_recomputes_running_maxima(void **state)
{
    fx_t *f = *state;
    const int64_t ts[4][3] = {{5, 1000, 25}, {35, 45, 55}, {65, 1100, 85}, {95, 105, 115}};
    add_four(f, ts);
    res_t k = {0};
    assert_int_equal(idx_delete_below(f->cl, "t", 0, 30, on_keys, &k), 0);
    wait_for(&f->loop, &k);
    assert_int_equal(k.status, 0);
    assert_int_equal(k.n, 1);
    free_keys(&k);
    const int64_t want[][3] = {{30, 35, 35},   {40, 45, 45},     {50, 55, 55},
                               {60, 65, 65},   {70, 1100, 1100}, {80, 85, 1100},
                               {90, 95, 1100}, {100, 105, 1100}, {110, 115, 1100}};
    check_cums(f->path, want, sizeof want / sizeof want[0]);
    res_t r;
    assert_int_equal(lookup_ts(f, "t", 0, 40, &r), 0);
    assert_int_equal(r.loc.chunk.first_offset, 40);
    assert_int_equal(lookup_ts(f, "t", 0, 60, &r), 0);
    assert_int_equal(r.loc.chunk.first_offset, 60);
    /* Deleting past the second maximum too: [90,119] is on its own. */
    k = (res_t){0};
    assert_int_equal(idx_delete_below(f->cl, "t", 0, 90, on_keys, &k), 0);
    wait_for(&f->loop, &k);
    assert_int_equal(k.n, 2);
    free_keys(&k);
    assert_int_equal(lookup_ts(f, "t", 0, 100, &r), 0);
    assert_int_equal(r.loc.chunk.first_offset, 100);
    assert_int_equal(lookup_ts(f, "t", 0, 116, &r), ST_E_RANGE);
    check_plans(f->path);
}

static void test_idx_open_rejects_bad_files(void **state)
{
    fx_t *f = *state;
    char path[128], err[512];
    idx_t *idx = NULL;

    /* Not a database at all. */
    snprintf(path, sizeof path, "%s/garbage.db", f->dir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 8192; i++)
        fputc((i * 7919) & 0xff, fp);
    fclose(fp);
    assert_int_equal(idx_open(path, &idx, err, sizeof err), ST_E_CORRUPT);
    assert_non_null(strstr(err, "not a database"));
    assert_non_null(strstr(err, path));

    /* A damaged index: wipe pages after the header of a real one. */
    snprintf(path, sizeof path, "%s/damaged.db", f->dir);
    assert_int_equal(idx_open(path, &idx, err, sizeof err), 0);
    idx_client_t *cl;
    assert_int_equal(idx_client_new(idx, &f->loop, &cl), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(add_seg_on(&f->loop, cl, "t", 0, i * 100, 8, 10, NULL), 0);
    close_client(&f->loop, cl);
    idx_close(idx); /* checkpoints the WAL into the main file */
    /* Wipe the last pages (chunk rows and index pages), keep the schema. */
    fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long size = ftell(fp);
    assert_true(size >= 4 * 4096);
    assert_int_equal(fseek(fp, size - 2 * 4096, SEEK_SET), 0);
    for (int i = 0; i < 2 * 4096; i++)
        fputc(0x5a, fp);
    fclose(fp);
    int rc = idx_open(path, &idx, err, sizeof err);
    if (rc == 0) { /* the schema survived: queries report the damage */
        assert_int_equal(idx_client_new(idx, &f->loop, &cl), 0);
        int n_corrupt = 0;
        for (int64_t o = 0; o < 2000; o += 10) {
            res_t r;
            memset(&r, 0, sizeof r);
            assert_int_equal(idx_lookup_offset(cl, "t", 0, o, on_loc, &r), 0);
            wait_for(&f->loop, &r);
            /* Damage is reported where SQLite notices it; never a crash. */
            assert_true(r.status == 0 || r.status == ST_E_CORRUPT || r.status == ST_E_RANGE);
            n_corrupt += r.status == ST_E_CORRUPT;
        }
        assert_true(n_corrupt > 0);
        close_client(&f->loop, cl);
        idx_close(idx);
    } else {
        assert_int_equal(rc, ST_E_CORRUPT);
        assert_non_null(strstr(err, "rebuild"));
    }

    /* A schema from a newer build. */
    snprintf(path, sizeof path, "%s/future.db", f->dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE schema_version(version INTEGER NOT NULL);"
                                  "INSERT INTO schema_version VALUES (99);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(idx_open(path, &idx, err, sizeof err), ST_E_INVAL);
    assert_non_null(strstr(err, "99"));

    /* A directory that does not exist. */
    snprintf(path, sizeof path, "%s/missing/dir/index.db", f->dir);
    rc = idx_open(path, &idx, err, sizeof err);
    assert_true(rc < 0);
    assert_non_null(strstr(err, "missing"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_idx_lookup_offset_boundaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_lookup_offset_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_lookup_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_add_rejects_overlap_and_bad_input, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_idx_list_segments_paged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_delete_below_and_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_many_segments_use_indexes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_persists_across_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_two_loops_submit_concurrently, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_close_with_pending_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_open_rejects_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_aborted_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_replace_switches_in_one_transaction, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_idx_replace_stores_running_maxima, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_delete_below_recomputes_running_maxima, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
