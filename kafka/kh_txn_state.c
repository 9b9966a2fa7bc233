/* kh_txn_state.c - a transaction's state: deep copies (the coordinator
 * builds the next state, makes it durable, then swaps it in) and its encoding
 * in meta.db (version byte, producer id and epochs, timeout, state, start
 * time, partitions, groups, pending offsets; big-endian, strings with an
 * int32 length, -1 for null). Data path: kh_txn.c encodes on its shard's
 * loop before each meta_txn_put; decodes at start (kh_txn_shard_start).
 * Invariant: decoding checks every length against the bytes left (a torn or
 * foreign row is refused, never over-read). */
#include "kafka/kh_txn_int.h"

#include <stdlib.h>
#include <string.h>

#define TXN_BLOB_VERSION 1

const char *const kh_txn__state_names[TS_N] = {"Empty",        "Ongoing",        "PrepareCommit",
                                               "PrepareAbort", "CompleteCommit", "CompleteAbort"};

/* ---- State: copies, encoding ---- */

void kh_txn__fini(tdata_t *d)
{
    for (int i = 0; i < d->n_tps; i++)
        free(d->tps[i].topic);
    free(d->tps);
    for (int i = 0; i < d->n_groups; i++)
        free(d->groups[i]);
    free(d->groups);
    for (int i = 0; i < d->n_offs; i++) {
        free(d->offs[i].group);
        free(d->offs[i].topic);
        free(d->offs[i].metadata);
    }
    free(d->offs);
    memset(d, 0, sizeof(*d));
}

static char *dup_or_null(const char *s, bool *ok)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *ok = false;
    return d;
}

/* A deep copy with room for extra_tps / extra_groups / extra_offs more entries. */
int kh_txn__copy(tdata_t *out, const tdata_t *in, int extra_tps, int extra_groups, int extra_offs)
{
    *out = *in;
    out->tps = calloc((size_t)(in->n_tps + extra_tps) + 1, sizeof(*out->tps));
    out->groups = calloc((size_t)(in->n_groups + extra_groups) + 1, sizeof(*out->groups));
    out->offs = calloc((size_t)(in->n_offs + extra_offs) + 1, sizeof(*out->offs));
    out->n_tps = out->n_groups = out->n_offs = 0;
    bool ok = out->tps && out->groups && out->offs;
    for (int i = 0; ok && i < in->n_tps; i++, out->n_tps++)
        out->tps[i] = (ttp_t){dup_or_null(in->tps[i].topic, &ok), in->tps[i].partition};
    for (int i = 0; ok && i < in->n_groups; i++, out->n_groups++)
        out->groups[i] = dup_or_null(in->groups[i], &ok);
    for (int i = 0; ok && i < in->n_offs; i++, out->n_offs++) {
        const toff_t *o = &in->offs[i];
        out->offs[i] = (toff_t){dup_or_null(o->group, &ok),
                                dup_or_null(o->topic, &ok),
                                o->partition,
                                o->offset,
                                o->leader_epoch,
                                dup_or_null(o->metadata, &ok)};
    }
    if (!ok) {
        kh_txn__fini(out);
        return ST_E_NOMEM;
    }
    return 0;
}

/* A copy with no partitions, groups nor offsets (a transaction that ended). */
void kh_txn__bare(tdata_t *out, const tdata_t *in)
{
    *out = *in;
    out->tps = NULL;
    out->groups = NULL;
    out->offs = NULL;
    out->n_tps = out->n_groups = out->n_offs = 0;
}

typedef struct {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} wbuf_t;

static void w_bytes(wbuf_t *b, const void *p, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void w_int(wbuf_t *b, int64_t v, int n)
{
    uint8_t x[8];
    for (int i = 0; i < n; i++)
        x[i] = (uint8_t)((uint64_t)v >> (8 * (n - 1 - i)));
    w_bytes(b, x, (size_t)n);
}

static void w_str(wbuf_t *b, const char *s)
{
    int32_t n = s ? (int32_t)strlen(s) : -1;
    w_int(b, n, 4);
    if (s)
        w_bytes(b, s, (size_t)n);
}

uint8_t *kh_txn__encode(const tdata_t *d, size_t *len)
{
    wbuf_t b = {0};
    w_int(&b, TXN_BLOB_VERSION, 1);
    w_int(&b, d->pid, 8);
    w_int(&b, d->epoch, 2);
    w_int(&b, d->last_epoch, 2);
    w_int(&b, d->timeout_ms, 4);
    w_int(&b, d->state, 1);
    w_int(&b, d->start_ms, 8);
    w_int(&b, d->n_tps, 4);
    for (int i = 0; i < d->n_tps; i++) {
        w_str(&b, d->tps[i].topic);
        w_int(&b, d->tps[i].partition, 4);
    }
    w_int(&b, d->n_groups, 4);
    for (int i = 0; i < d->n_groups; i++)
        w_str(&b, d->groups[i]);
    w_int(&b, d->n_offs, 4);
    for (int i = 0; i < d->n_offs; i++) {
        const toff_t *o = &d->offs[i];
        w_str(&b, o->group);
        w_str(&b, o->topic);
        w_int(&b, o->partition, 4);
        w_int(&b, o->offset, 8);
        w_int(&b, o->leader_epoch, 4);
        w_str(&b, o->metadata);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

typedef struct {
    const uint8_t *p, *end;
    bool bad;
} rbuf_t;

static int64_t r_int(rbuf_t *r, int n)
{
    if (r->bad || r->end - r->p < n) {
        r->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | *r->p++;
    if (n < 8 && (v >> (8 * n - 1)) & 1) /* sign-extend */
        v |= ~(uint64_t)0 << (8 * n);
    return (int64_t)v;
}

static char *r_str(rbuf_t *r)
{
    int32_t n = (int32_t)r_int(r, 4);
    if (r->bad || n < 0)
        return NULL;
    if (r->end - r->p < n) {
        r->bad = true;
        return NULL;
    }
    char *s = strndup((const char *)r->p, (size_t)n);
    if (!s)
        r->bad = true;
    r->p += n;
    return s;
}

static int32_t r_count(rbuf_t *r, size_t min_elem)
{
    int32_t n = (int32_t)r_int(r, 4);
    if (n < 0 || (size_t)n > (size_t)(r->end - r->p) / min_elem)
        r->bad = true;
    return r->bad ? 0 : n;
}

int kh_txn__decode(tdata_t *d, const void *blob, size_t len)
{
    rbuf_t r = {blob, (const uint8_t *)blob + len, false};
    memset(d, 0, sizeof(*d));
    if (r_int(&r, 1) != TXN_BLOB_VERSION)
        return ST_E_CORRUPT;
    d->pid = r_int(&r, 8);
    d->epoch = (int16_t)r_int(&r, 2);
    d->last_epoch = (int16_t)r_int(&r, 2);
    d->timeout_ms = (int32_t)r_int(&r, 4);
    int st = (int)r_int(&r, 1);
    d->state = st >= 0 && st < TS_N ? (tstate_t)st : TS_EMPTY;
    d->start_ms = r_int(&r, 8);
    int32_t n = r_count(&r, 8);
    d->tps = calloc((size_t)n + 1, sizeof(*d->tps));
    for (int i = 0; d->tps && !r.bad && i < n; i++, d->n_tps++)
        d->tps[i] = (ttp_t){r_str(&r), (int32_t)r_int(&r, 4)};
    n = r_count(&r, 4);
    d->groups = calloc((size_t)n + 1, sizeof(*d->groups));
    for (int i = 0; d->groups && !r.bad && i < n; i++, d->n_groups++)
        d->groups[i] = r_str(&r);
    n = r_count(&r, 32);
    d->offs = calloc((size_t)n + 1, sizeof(*d->offs));
    for (int i = 0; d->offs && !r.bad && i < n; i++, d->n_offs++) {
        toff_t *o = &d->offs[i];
        o->group = r_str(&r);
        o->topic = r_str(&r);
        o->partition = (int32_t)r_int(&r, 4);
        o->offset = r_int(&r, 8);
        o->leader_epoch = (int32_t)r_int(&r, 4);
        o->metadata = r_str(&r);
    }
    if (r.bad || !d->tps || !d->groups || !d->offs) {
        kh_txn__fini(d);
        return ST_E_CORRUPT;
    }
    for (int i = 0; i < d->n_tps; i++)
        if (!d->tps[i].topic)
            goto bad;
    for (int i = 0; i < d->n_offs; i++)
        if (!d->offs[i].group || !d->offs[i].topic)
            goto bad;
    return 0;
bad:
    kh_txn__fini(d);
    return ST_E_CORRUPT;
}
