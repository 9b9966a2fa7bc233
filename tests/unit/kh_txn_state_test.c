/* kh_txn_state_test.c - unit tests of a transaction's durable state
 * (kafka/kh_txn_state.c): what the coordinator writes to meta.db before each
 * change must decode to the same state after a restart, and a short, torn or
 * foreign row (every prefix of a real one, every single-byte corruption of
 * its lengths) is refused or decoded within bounds, never over-read (ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kafka/kh_txn_int.h"

static void fill(tdata_t *d)
{
    memset(d, 0, sizeof(*d));
    d->pid = 4242;
    d->epoch = 7;
    d->last_epoch = 6;
    d->timeout_ms = 60000;
    d->state = TS_ONGOING;
    d->start_ms = 1700000000123;
    d->tps = calloc(2, sizeof(*d->tps));
    d->tps[0] = (ttp_t){strdup("orders"), 0};
    d->tps[1] = (ttp_t){strdup("payments"), 3};
    d->n_tps = 2;
    d->groups = calloc(1, sizeof(*d->groups));
    d->groups[0] = strdup("enricher");
    d->n_groups = 1;
    d->offs = calloc(2, sizeof(*d->offs));
    d->offs[0] = (toff_t){strdup("enricher"), strdup("in"), 1, 99, 3, strdup("meta")};
    d->offs[1] = (toff_t){strdup("enricher"), strdup("in"), 2, 100, -1, NULL};
    d->n_offs = 2;
}

static void test_round_trip_and_copy(void **state)
{
    (void)state;
    tdata_t d, back, copy;
    fill(&d);
    size_t len = 0;
    uint8_t *blob = kh_txn__encode(&d, &len);
    assert_non_null(blob);
    assert_int_equal(kh_txn__decode(&back, blob, len), 0);
    assert_int_equal(back.pid, 4242);
    assert_int_equal(back.epoch, 7);
    assert_int_equal(back.last_epoch, 6);
    assert_int_equal(back.timeout_ms, 60000);
    assert_int_equal(back.state, TS_ONGOING);
    assert_int_equal(back.start_ms, 1700000000123);
    assert_int_equal(back.n_tps, 2);
    assert_string_equal(back.tps[1].topic, "payments");
    assert_int_equal(back.tps[1].partition, 3);
    assert_int_equal(back.n_groups, 1);
    assert_string_equal(back.groups[0], "enricher");
    assert_int_equal(back.n_offs, 2);
    assert_int_equal(back.offs[0].offset, 99);
    assert_string_equal(back.offs[0].metadata, "meta");
    assert_null(back.offs[1].metadata); /* null stays null */
    assert_int_equal(back.offs[1].leader_epoch, -1);
    /* A copy with room for more, and a bare copy (an ended transaction). */
    assert_int_equal(kh_txn__copy(&copy, &d, 1, 1, 1), 0);
    copy.tps[copy.n_tps++] = (ttp_t){strdup("more"), 9};
    assert_int_equal(copy.n_tps, 3);
    assert_string_equal(copy.offs[0].group, "enricher");
    tdata_t bare;
    kh_txn__bare(&bare, &d);
    assert_int_equal(bare.n_tps + bare.n_groups + bare.n_offs, 0);
    assert_int_equal(bare.pid, 4242);
    kh_txn__fini(&copy);
    kh_txn__fini(&back);
    kh_txn__fini(&d);
    free(blob);
}

static void test_torn_and_corrupt_rows(void **state)
{
    (void)state;
    tdata_t d, back;
    fill(&d);
    size_t len = 0;
    uint8_t *blob = kh_txn__encode(&d, &len);
    assert_non_null(blob);
    /* Every strict prefix is refused (heap copies: ASan sees any over-read). */
    for (size_t n = 0; n < len; n++) {
        uint8_t *p = malloc(n ? n : 1);
        memcpy(p, blob, n);
        assert_int_equal(kh_txn__decode(&back, p, n), ST_E_CORRUPT);
        free(p);
    }
    /* Any byte changed: refused, or decoded within bounds. */
    for (size_t i = 0; i < len; i++) {
        for (int v = 0; v < 256; v += 51) {
            uint8_t *p = malloc(len);
            memcpy(p, blob, len);
            p[i] = (uint8_t)v;
            if (kh_txn__decode(&back, p, len) == 0) {
                assert_true(back.state >= TS_EMPTY && back.state < TS_N);
                kh_txn__fini(&back);
            }
            free(p);
        }
    }
    uint8_t other[] = {99, 0, 0};
    assert_int_equal(kh_txn__decode(&back, other, sizeof(other)), ST_E_CORRUPT); /* version */
    kh_txn__fini(&d);
    free(blob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_copy),
        cmocka_unit_test(test_torn_and_corrupt_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
