/* adm_txn.c - transactions over the admin HTTP API, for operators and
 * `strata transaction list|describe` (rpk's `rpk cluster txn`):
 *   GET /v1/transactions        {"transactions": [TXN...]} sorted by id
 *   GET /v1/transactions/{id}   TXN, or 404 unknown_transactional_id
 * TXN = {"transactional_id", "producer_id", "producer_epoch", "state",
 *        "timeout_ms", "start_ms" (-1 when none is open), "groups",
 *        "partitions": [{"topic", "partition"}]}
 * Data path: runs on the admin loop; each shard copies its coordinator's
 * transactions (kh_txn_snapshot, no I/O) and the answers are joined here. */
#include "admin/adm_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    kh_txn_info_t *v;
    int n;
} txns_t;

typedef struct {
    char id[1024]; /* empty: all */
} txn_arg_t;

static void on_shard_txns(rt_shard_t *sh, adm_gather_t *g, int slot)
{
    (void)sh;
    txns_t *t = calloc(1, sizeof(*t));
    if (t)
        t->v = kh_txn_snapshot(&t->n);
    g->result[slot] = t; /* NULL (out of memory) answers 500 */
}

static json_t *txn_json(const kh_txn_info_t *x)
{
    json_t *parts = json_array();
    for (int i = 0; parts && i < x->n_partitions; i++)
        json_array_append_new(parts, json_pack("{s:s,s:i}", "topic", x->topics[i], "partition",
                                               (int)x->partitions[i]));
    return json_pack("{s:s,s:I,s:i,s:s,s:i,s:I,s:i,s:o}", "transactional_id", x->id, "producer_id",
                     (json_int_t)x->producer_id, "producer_epoch", (int)x->producer_epoch, "state",
                     x->state, "timeout_ms", (int)x->timeout_ms, "start_ms",
                     (json_int_t)x->start_ms, "groups", x->n_groups, "partitions",
                     parts ? parts : json_array());
}

static int by_id(const void *a, const void *b)
{
    return strcmp((*(const kh_txn_info_t *const *)a)->id, (*(const kh_txn_info_t *const *)b)->id);
}

static void txns_done(adm_gather_t *g)
{
    adm_call_t *call = g->call;
    txn_arg_t *a = g->arg;
    g->call = NULL;
    int n = 0;
    bool oom = false;
    for (int i = 0; i < g->n; i++) {
        txns_t *t = g->result[i];
        oom |= !t;
        n += t ? t->n : 0;
    }
    const kh_txn_info_t **all = oom ? NULL : calloc((size_t)n + 1, sizeof(*all));
    if (!all) {
        adm_reply_error(call, 500, "internal", "out of memory");
        goto out;
    }
    int k = 0;
    for (int i = 0; i < g->n; i++) {
        txns_t *t = g->result[i];
        for (int j = 0; j < t->n; j++)
            if (!a->id[0] || !strcmp(t->v[j].id, a->id))
                all[k++] = &t->v[j];
    }
    qsort(all, (size_t)k, sizeof(*all), by_id);
    if (a->id[0]) {
        if (k == 0)
            adm_reply_error(call, 404, "unknown_transactional_id",
                            "transactional id '%s' is not known", a->id);
        else
            adm_reply_json(call, 200, txn_json(all[0]));
    } else {
        json_t *arr = json_array();
        for (int i = 0; arr && i < k; i++)
            json_array_append_new(arr, txn_json(all[i]));
        adm_reply_json(call, 200, json_pack("{s:o}", "transactions", arr ? arr : json_array()));
    }
    free(all);
out:
    for (int i = 0; i < g->n; i++) {
        txns_t *t = g->result[i];
        if (!t)
            continue;
        kh_txn_info_free(t->v, t->n);
        t->v = NULL;
        t->n = 0;
    }
}

void adm_txn_get(adm_call_t *call, const char *id, size_t id_len)
{
    txn_arg_t *a = calloc(1, sizeof(*a));
    if (!a) {
        adm_reply_error(call, 500, "internal", "out of memory");
        return;
    }
    if (id && !adm_decode_segment(id, id_len, a->id, sizeof(a->id))) {
        free(a);
        adm_reply_error(call, 400, "bad_request", "invalid transactional id in the path");
        return;
    }
    adm_gather(call, on_shard_txns, txns_done, a, free);
}
