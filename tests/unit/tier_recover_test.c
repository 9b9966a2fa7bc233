/* tier_recover_test.c - rebuilding the remote index from a bucket alone
 * (tiering/tier_recover.c) over the file:// store: rows equal what the
 * uploader wrote, foreign and corrupt objects are skipped, the object key
 * parser. No network, no sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "index/idx.h"
#include "tests/support/tobj.h"
#include "tiering/obj.h"
#include "tiering/seg.h"
#include "tiering/tier.h"

/* A segment of n_batches batches of 20 records from base, as an object. */
static void make_object(int64_t base, int n_batches, tobj_buf_t *obj, tier_seg_info_t *info)
{
    assert_int_equal(tobj_build(base, n_batches, 16384, obj, info), 0);
}

static void put(uv_loop_t *loop, obj_store_t *st, const char *key, const void *p, size_t n)
{
    assert_int_equal(tobj_put(loop, st, key, p, n), 0);
}

typedef struct {
    bool done;
    int status;
    idx_loc_t loc;
    char key[1024];
} loc_wait_t;

static void on_loc(void *arg, int status, const idx_loc_t *loc)
{
    loc_wait_t *w = arg;
    w->done = true;
    w->status = status;
    if (status == 0) {
        w->loc = *loc;
        snprintf(w->key, sizeof(w->key), "%s", loc->seg.object_key);
    }
}

static void noop(void *arg)
{
    (void)arg;
}

static void test_tier_recover_rebuilds_rows_as_uploaded(void **state)
{
    (void)state;
    char dir[] = "/tmp/strata-rec-XXXXXX", url[256], idx_path[256];
    assert_non_null(mkdtemp(dir));
    snprintf(url, sizeof(url), "file://%s/arch", dir);
    snprintf(idx_path, sizeof(idx_path), "%s/idx.db", dir);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    obj_config_t oc = {.url = url};
    obj_store_t *st;
    char err[256];
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s/arch", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(obj_store_new(&loop, &oc, &st, err, sizeof(err)), 0);

    /* t-3: two segments; u-0: one; plus a foreign object and a corrupt one. */
    tobj_buf_t o1 = {0}, o2 = {0}, o3 = {0};
    tier_seg_info_t i1, i2, i3;
    make_object(0, 30, &o1, &i1);
    make_object(600, 10, &o2, &i2);
    make_object(0, 5, &o3, &i3);
    assert_true(i1.n_chunks > 2);
    char k1[512], k2[512], k3[512], kbad[512];
    tier_object_key("t", 3, 0, 599, 0, k1, sizeof(k1));
    tier_object_key("t", 3, 600, 799, 0, k2, sizeof(k2));
    tier_object_key("u", 0, 0, 99, 0, k3, sizeof(k3));
    tier_object_key("u", 0, 100, 199, 0, kbad, sizeof(kbad));
    put(&loop, st, k1, o1.p, o1.len);
    put(&loop, st, k2, o2.p, o2.len);
    put(&loop, st, k3, o3.p, o3.len);
    put(&loop, st, kbad, "not a seekable object", 21);
    put(&loop, st, "README.txt", "hello", 5);
    /* t's manifest (as tier_topics.c writes it) and a damaged one for v. */
    meta_kv_t kv[] = {{"local.retention.bytes", "32768"}, {"segment.bytes", "8388608"}};
    meta_topic_t mt = {.name = "t", .n_partitions = 6, .configs = kv, .n_configs = 2};
    char *mj = tier_topic_manifest_json(&mt);
    assert_non_null(mj);
    char mk[512];
    assert_int_equal(tier_topic_manifest_key("t", mk, sizeof(mk)), 0);
    assert_string_equal(mk, "_strata/topics/t.json");
    put(&loop, st, mk, mj, strlen(mj));
    free(mj);
    put(&loop, st, "_strata/topics/v.json", "{\"topic\": 3}", 12);
    obj_store_close(st, noop, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);

    idx_t *idx;
    assert_int_equal(idx_open(idx_path, &idx, err, sizeof(err)), 0);
    tier_recover_result_t res;
    assert_int_equal(tier_recover_blocking(url, idx, true, &res, err, sizeof(err)), 0);
    assert_int_equal(res.objects, 3);
    assert_int_equal(res.tail_only, 3); /* ranged GETs of their tables, not whole objects */
    assert_int_equal(res.failed, 1);    /* the corrupt one stays out of the index */
    assert_int_equal(res.skipped, 1);   /* README.txt */
    assert_int_equal(res.n_parts, 2);
    assert_int_equal(res.n_topics, 1); /* v's manifest is unreadable: v gets defaults */
    assert_string_equal(res.topics[0].name, "t");
    assert_int_equal(res.topics[0].n_partitions, 6);
    assert_int_equal(res.topics[0].n_configs, 2);
    assert_string_equal(res.topics[0].configs[1].key, "segment.bytes");
    assert_string_equal(res.topics[0].configs[1].value, "8388608");
    for (size_t i = 0; i < res.n_parts; i++) {
        const tier_recover_part_t *p = &res.parts[i];
        if (!strcmp(p->topic, "t")) {
            assert_int_equal(p->partition, 3);
            assert_int_equal(p->low_offset, 0);
            assert_int_equal(p->high_offset, 799);
        } else {
            assert_string_equal(p->topic, "u");
            assert_int_equal(p->high_offset, 99);
        }
    }
    tier_recover_result_fini(&res);

    /* Every chunk of t-3's first object is found exactly as the writer described it. */
    idx_client_t *c;
    assert_int_equal(idx_client_new(idx, &loop, &c), 0);
    for (size_t i = 0; i < i1.n_chunks; i++) {
        loc_wait_t w = {0};
        assert_int_equal(idx_lookup_offset(c, "t", 3, i1.chunks[i].first_offset, on_loc, &w), 0);
        while (!w.done)
            uv_run(&loop, UV_RUN_ONCE);
        assert_int_equal(w.status, 0);
        assert_string_equal(w.key, k1);
        assert_int_equal(w.loc.chunk.first_offset, i1.chunks[i].first_offset);
        assert_int_equal(w.loc.chunk.last_offset, i1.chunks[i].last_offset);
        assert_int_equal(w.loc.chunk.obj_pos, (int64_t)i1.chunks[i].obj_pos);
        assert_int_equal(w.loc.chunk.obj_len, i1.chunks[i].obj_len);
        assert_int_equal(w.loc.chunk.raw_len, i1.chunks[i].raw_len);
        assert_int_equal(w.loc.chunk.checksum, i1.chunks[i].crc32c);
        assert_int_equal(w.loc.chunk.max_ts, i1.chunks[i].max_ts);
        assert_int_equal(w.loc.seg.checksum, i1.obj_crc32c);
        assert_int_equal(w.loc.seg.size, (int64_t)i1.obj_size);
        assert_int_equal(w.loc.seg.max_ts, i1.max_ts);
    }
    idx_client_close(c, noop, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);

    /* With rows in the index, start-up recovery does nothing. */
    assert_int_equal(tier_recover_blocking(url, idx, true, &res, err, sizeof(err)), 0);
    assert_true(res.was_not_empty);
    assert_int_equal(res.objects, 0);
    tier_recover_result_fini(&res);
    idx_close(idx);
    assert_int_equal(uv_loop_close(&loop), 0);
    tier_seg_info_fini(&i1);
    tier_seg_info_fini(&i2);
    tier_seg_info_fini(&i3);
    free(o1.p);
    free(o2.p);
    free(o3.p);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A range of an active segment uploaded, its index commit lost (a crash),
 * then taken again longer from the same offset: the longer object is the
 * one recovery indexes, or the offsets only it holds would be lost. */
static void test_tier_recover_prefers_the_longest_object_of_an_offset(void **state)
{
    (void)state;
    char dir[] = "/tmp/strata-rec-XXXXXX", url[256], idx_path[256], cmd[600], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(url, sizeof(url), "file://%s/arch", dir);
    snprintf(idx_path, sizeof(idx_path), "%s/idx.db", dir);
    snprintf(cmd, sizeof(cmd), "mkdir -p %s/arch", dir);
    assert_int_equal(system(cmd), 0);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    obj_config_t oc = {.url = url};
    obj_store_t *st;
    assert_int_equal(obj_store_new(&loop, &oc, &st, err, sizeof(err)), 0);
    static const int64_t base[] = {0, 100, 100, 200}, n[] = {5, 2, 5, 5};
    tobj_buf_t o[4] = {{0}};
    tier_seg_info_t info[4];
    char k[4][512];
    for (int i = 0; i < 4; i++) {
        make_object(base[i], (int)n[i], &o[i], &info[i]);
        tier_object_key("w", 0, base[i], base[i] + n[i] * 20 - 1, 0, k[i], sizeof(k[i]));
        put(&loop, st, k[i], o[i].p, o[i].len);
    }
    obj_store_close(st, noop, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);

    idx_t *idx;
    assert_int_equal(idx_open(idx_path, &idx, err, sizeof(err)), 0);
    tier_recover_result_t res;
    assert_int_equal(tier_recover_blocking(url, idx, true, &res, err, sizeof(err)), 0);
    assert_int_equal(res.objects, 3);
    assert_int_equal(res.skipped, 1); /* the shorter 100-139 */
    assert_int_equal(res.failed, 0);
    assert_int_equal(res.n_parts, 1);
    assert_int_equal(res.parts[0].high_offset, 299);
    tier_recover_result_fini(&res);
    idx_client_t *c;
    assert_int_equal(idx_client_new(idx, &loop, &c), 0);
    loc_wait_t w = {0};
    assert_int_equal(idx_lookup_offset(c, "w", 0, 150, on_loc, &w), 0);
    while (!w.done)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(w.status, 0);
    assert_string_equal(w.key, k[2]);
    assert_true(w.loc.chunk.first_offset <= 150 && w.loc.chunk.last_offset >= 150);
    idx_client_close(c, noop, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    idx_close(idx);
    assert_int_equal(uv_loop_close(&loop), 0);
    for (int i = 0; i < 4; i++) {
        tier_seg_info_fini(&info[i]);
        free(o[i].p);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_tier_parse_object_key_accepts_only_segment_keys(void **state)
{
    (void)state;
    char key[512], topic[256];
    int32_t p;
    int64_t base, last;
    tier_object_key("orders.v1", 12, 100, 199, 3, key, sizeof(key));
    assert_int_equal(tier_parse_object_key(key, topic, sizeof(topic), &p, &base, &last), 0);
    assert_string_equal(topic, "orders.v1");
    assert_int_equal(p, 12);
    assert_int_equal(base, 100);
    assert_int_equal(last, 199);
    static const char *bad[] = {
        "README.txt",
        "0123abcd/t/0/00000000000000000000-00000000000000000009-0.seg",
        "0123abcX/t/0/00000000000000000000-00000000000000000009-0.seg.zst",
        "0123abcd//0/00000000000000000000-00000000000000000009-0.seg.zst",
        "0123abcd/t/x/00000000000000000000-00000000000000000009-0.seg.zst",
        "0123abcd/t/0/0-9-0.seg.zst",
        "0123abcd/t/0/00000000000000000010-00000000000000000009-0.seg.zst",
        "0123abcd/t/0/00000000000000000000-00000000000000000009-.seg.zst",
        "0123abcd/t/0/00000000000000000000-00000000000000000009-0_c12.seg.zst",
        "0123abcd/t/0/00000000000000000000-00000000000000000009-0_cx000000001.seg.zst",
        "0123abcd/t/0/00000000000000000000-00000000000000000009-0_d0000000001.seg.zst",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(tier_parse_object_key(bad[i], topic, sizeof(topic), &p, &base, &last),
                         ST_E_INVAL);
    /* A compacted rewrite (tier_acomp.c): same range, a generation, sorted
     * after the object it replaces (recovery indexes the last one). */
    uint32_t gen = 7;
    assert_int_equal(tier_object_key_gen(key, &gen), 0);
    assert_int_equal(gen, 0);
    char ckey[512], ckey2[512];
    tier_object_key_with_gen("orders.v1", 12, 100, 199, 3, 1733350000u, ckey, sizeof(ckey));
    tier_object_key_with_gen("orders.v1", 12, 100, 199, 3, 1733350001u, ckey2, sizeof(ckey2));
    assert_int_equal(tier_parse_object_key(ckey, topic, sizeof(topic), &p, &base, &last), 0);
    assert_int_equal(base, 100);
    assert_int_equal(last, 199);
    assert_int_equal(tier_object_key_gen(ckey, &gen), 0);
    assert_int_equal(gen, 1733350000u);
    assert_true(strcmp(key, ckey) < 0 && strcmp(ckey, ckey2) < 0);
    assert_int_equal(tier_object_key_gen("README.txt", &gen), ST_E_INVAL);
    /* A topic longer than the buffer is refused, not truncated. */
    assert_int_equal(tier_parse_object_key(key, topic, 4, &p, &base, &last), ST_E_INVAL);
}

/* Manifests round-trip; anything else from the bucket is refused. */
static void test_tier_topic_manifest_parse(void **state)
{
    (void)state;
    meta_kv_t kv[] = {{"retention.ms", "-1"}, {"x\"y", "a\nb"}};
    meta_topic_t mt = {.name = "a.b-c_d", .n_partitions = 3, .configs = kv, .n_configs = 2};
    char *j = tier_topic_manifest_json(&mt);
    assert_non_null(j);
    tier_recover_topic_t t;
    assert_int_equal(tier_topic_manifest_parse(j, strlen(j), &t), 0);
    assert_string_equal(t.name, "a.b-c_d");
    assert_int_equal(t.n_partitions, 3);
    assert_int_equal(t.n_configs, 2);
    assert_string_equal(t.configs[1].key, "x\"y");
    assert_string_equal(t.configs[1].value, "a\nb");
    tier_recover_topic_fini(&t);
    free(j);
    static const char *bad[] = {
        "",
        "[]",
        "{\"topic\":\"t\",\"partitions\":1}",
        "{\"topic\":\"t\",\"partitions\":0,\"configs\":{}}",
        "{\"topic\":\"t\",\"partitions\":2000000,\"configs\":{}}",
        "{\"topic\":\"a/b\",\"partitions\":1,\"configs\":{}}",
        "{\"topic\":\"t\",\"partitions\":1,\"configs\":{\"k\":1}}",
        "{\"topic\":\"t\",\"topic\":\"u\",\"partitions\":1,\"configs\":{}}",
        "{\"topic\":\"t\",\"partitions\":1,\"configs\":{}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(tier_topic_manifest_parse(bad[i], strlen(bad[i]), &t), ST_E_CORRUPT);
    char name[256];
    assert_int_equal(tier_topic_manifest_name("_strata/topics/t1.json", name, sizeof(name)), 0);
    assert_string_equal(name, "t1");
    assert_int_equal(tier_topic_manifest_name("_strata/topics/.json", name, sizeof(name)),
                     ST_E_INVAL);
    assert_int_equal(tier_topic_manifest_name("_strata/topics/a/b.json", name, sizeof(name)),
                     ST_E_INVAL);
    assert_int_equal(tier_topic_manifest_name("_strata/topics/t1.jso", name, sizeof(name)),
                     ST_E_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tier_recover_rebuilds_rows_as_uploaded),
        cmocka_unit_test(test_tier_recover_prefers_the_longest_object_of_an_offset),
        cmocka_unit_test(test_tier_parse_object_key_accepts_only_segment_keys),
        cmocka_unit_test(test_tier_topic_manifest_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
