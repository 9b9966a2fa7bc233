/* kh_txn.c - the transaction coordinator: InitProducerId with a
 * transactional.id, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit,
 * EndTxn; transaction timeouts; recovery at start.
 * Data path: the connection's shard validates a request against the topic
 * snapshot -> one op per transactional id is posted to the id's shard
 * (rt_shard_for(id, 0, n), like groups) -> the coordinator there checks the
 * producer id and epoch, makes the next state durable in meta.db on the
 * thread pool (meta_txn_put) and only then changes memory -> AddPartitionsToTxn
 * registers the producer on each new partition's owner (kh_txn_part_begin)
 * before it answers -> EndTxn writes PrepareCommit/PrepareAbort, appends a
 * marker to every partition of the transaction and waits until each is
 * durable, commits the pending TxnOffsetCommit offsets through the groups'
 * offset writers (commit only), then writes CompleteCommit/CompleteAbort and
 * answers.
 *
 * States (Kafka's names, DescribeTransactions):
 *   Empty/Complete* --AddPartitions/AddOffsets--> Ongoing
 *   Ongoing --EndTxn(commit)--> PrepareCommit --markers+offsets--> CompleteCommit
 *   Ongoing --EndTxn(abort) / timeout / InitProducerId--> PrepareAbort --markers--> CompleteAbort
 *   Empty/Complete* --InitProducerId--> Empty (epoch + 1)
 * Invariants: 1. a transaction is touched only on its shard's loop;
 *             2. memory changes only after the row holding the change is
 *                durable; at most one change or marker round per transaction
 *                is in flight (busy): others get CONCURRENT_TRANSACTIONS;
 *             3. markers are written only after the Prepare* row, and the
 *                Complete* row only after every marker is durable, so a
 *                restart finds Prepare* and writes the markers again (a
 *                second marker for a closed transaction changes nothing);
 *             4. a transaction timed out, or abandoned by a new
 *                InitProducerId, is aborted with the epoch bumped, which
 *                fences its producer. */
#include "core/st_log.h"
#include "kafka/kh_txn_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TXN_EPOCH_MAX 32766 /* past it a new producer id is given (Kafka: Short.MAX - 1) */

static _Thread_local coord_t *t_coord;
/* Pending offsets of the groups this shard owns (see "Pending offsets"):
 * independent of the coordinator's start, as another shard's recovery may post
 * here first; freed (and closed to new entries) with the coordinator. */
static _Thread_local pend_t *t_pend;
static _Thread_local bool t_pend_closed;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Transactions of this shard ---- */

static txn_t *txn_find(coord_t *c, const char *id)
{
    for (txn_t *t = c->txns; t; t = t->next)
        if (!strcmp(t->id, id))
            return t;
    return NULL;
}

static txn_t *txn_new(coord_t *c, const char *id)
{
    txn_t *t = calloc(1, sizeof(*t));
    if (!t || !(t->id = strdup(id))) {
        free(t);
        return NULL;
    }
    t->d.pid = -1;
    t->d.last_epoch = -1;
    t->touched_ms = wall_ms();
    t->next = c->txns;
    c->txns = t;
    return t;
}

static void coord_maybe_free(coord_t *c)
{
    if (!c->closing || c->n_out > 0 || !c->timer_closed)
        return;
    kh_shard_t *ks = c->ks;
    for (txn_t *t = c->txns, *n; t; t = n) {
        n = t->next;
        kh_txn__fini(&t->d);
        free(t->id);
        free(t);
    }
    t_pend_closed = true;
    while (t_pend) {
        pend_t *p = t_pend;
        t_pend = p->next;
        free(p->txn);
        free(p->group);
        free(p->topic);
        free(p);
    }
    if (t_coord == c)
        t_coord = NULL;
    free(c);
    kh_shard_drained(ks); /* the kafka layer's shutdown waited for its ops */
}

/* ---- Pending offsets, kept on the groups' shards ---- */


typedef struct {
    kh_post_t post;
    pend_t p; /* owned strings (moved into the list) */
} pmsg_t;

static void pmsg_free(pmsg_t *m)
{
    free(m->p.txn);
    free(m->p.group);
    free(m->p.topic);
    free(m);
}

static void pmsg_closed(rt_shard_t *sh, void *arg)
{
    (void)sh;
    pmsg_free(arg);
}

/* On the group's shard: txn's offsets of group are committed or dropped. */
static void pend_forget(const char *txn, const char *group)
{
    for (pend_t **pp = &t_pend; *pp;) {
        pend_t *p = *pp;
        if (!strcmp(p->txn, txn) && !strcmp(p->group, group)) {
            *pp = p->next;
            free(p->txn);
            free(p->group);
            free(p->topic);
            free(p);
        } else {
            pp = &p->next;
        }
    }
}

static void pmsg_run(rt_shard_t *sh, void *arg)
{
    pmsg_t *m = arg;
    (void)sh;
    if (t_pend_closed) {
        pmsg_free(m);
        return;
    }
    for (pend_t *p = t_pend; p; p = p->next)
        if (p->partition == m->p.partition && !strcmp(p->txn, m->p.txn) &&
            !strcmp(p->group, m->p.group) && !strcmp(p->topic, m->p.topic)) {
            pmsg_free(m);
            return;
        }
    pend_t *p = malloc(sizeof(*p));
    if (!p) {
        ST_ERROR("txn", "out of memory tracking pending offsets of group=%s", m->p.group);
        pmsg_free(m);
        return;
    }
    *p = m->p;
    p->next = t_pend;
    t_pend = p;
    free(m);
}

/* Tell the group's shard that t will commit o (forgotten there when the
 * transaction's round commits or drops the group's offsets: goff_run). */
static void pend_post(coord_t *c, const txn_t *t, const char *group, const toff_t *o)
{
    pmsg_t *m = calloc(1, sizeof(*m));
    if (!m)
        goto oom;
    m->p.txn = strdup(t->id);
    m->p.group = strdup(group);
    m->p.topic = strdup(o->topic);
    m->p.partition = o->partition;
    if (!m->p.txn || !m->p.group || !m->p.topic) {
        pmsg_free(m);
        goto oom;
    }
    kh_post(c->ks, &m->post, rt_shard_for(group, 0, rt_shard_count(c->ks->ctx->rt)), pmsg_run,
            pmsg_closed, m);
    return;
oom:
    ST_ERROR("txn", "out of memory tracking pending offsets of transaction id=%s", t->id);
}

bool kh_txn_offsets_pending(const char *group, const char *topic, int32_t partition)
{
    for (const pend_t *p = t_pend; p; p = p->next)
        if (p->partition == partition && !strcmp(p->group, group) && !strcmp(p->topic, topic))
            return true;
    return false;
}

/* ---- Durable changes (thread pool) ---- */

/* Begun and not complete (the strata_kafka_transactions_open gauge). */
static bool is_open(tstate_t s)
{
    return s == TS_ONGOING || s == TS_PREPARE_COMMIT || s == TS_PREPARE_ABORT;
}

typedef void (*persist_fn)(coord_t *c, txn_t *t, int status, void *arg);

typedef struct {
    uv_work_t work;
    coord_t *c;
    txn_t *t;
    tdata_t next; /* owned until applied */
    uint8_t *blob;
    size_t len;
    int rc;
    persist_fn done;
    void *arg;
} pwork_t;

static void persist_work(uv_work_t *w)
{
    pwork_t *pw = w->data;
    pw->rc = meta_txn_put(pw->c->ks->ctx->meta, pw->t->id, pw->blob, pw->len);
}

static void persist_after(uv_work_t *w, int status)
{
    pwork_t *pw = w->data;
    coord_t *c = pw->c;
    txn_t *t = pw->t;
    int rc = status != 0 ? ST_E_IO : pw->rc;
    if (rc == 0) {
        bool was_open = is_open(t->d.state), now_open = is_open(pw->next.state);
        if (was_open != now_open)
            st_metric_add(ST_M_TXN_OPEN, now_open ? 1 : -1);
        if (t->d.state != pw->next.state && pw->next.state == TS_COMPLETE_COMMIT)
            st_metric_add(ST_M_TXN_COMMITS, 1);
        if (t->d.state != pw->next.state && pw->next.state == TS_COMPLETE_ABORT)
            st_metric_add(ST_M_TXN_ABORTS, 1);
        kh_txn__fini(&t->d);
        t->d = pw->next; /* memory follows disk */
        t->touched_ms = wall_ms();
    } else {
        kh_txn__fini(&pw->next);
    }
    free(pw->blob);
    persist_fn done = pw->done;
    void *arg = pw->arg;
    free(pw);
    c->n_out--;
    done(c, t, rc, arg);
    coord_maybe_free(c);
}

/* Make next (taken) the durable state of t, then done(c, t, status, arg) on
 * the loop; t is busy meanwhile (the caller set it). */
static void persist(coord_t *c, txn_t *t, tdata_t *next, persist_fn done, void *arg)
{
    pwork_t *pw = calloc(1, sizeof(*pw));
    if (pw)
        pw->blob = kh_txn__encode(next, &pw->len);
    if (!pw || !pw->blob) {
        free(pw);
        kh_txn__fini(next);
        done(c, t, ST_E_NOMEM, arg);
        return;
    }
    pw->c = c;
    pw->t = t;
    pw->next = *next;
    pw->done = done;
    pw->arg = arg;
    pw->work.data = pw;
    c->n_out++;
    if (uv_queue_work(rt_shard_loop(c->ks->sh), &pw->work, persist_work, persist_after) != 0) {
        c->n_out--;
        kh_txn__fini(&pw->next);
        free(pw->blob);
        free(pw);
        done(c, t, ST_E_IO, arg);
    }
}


static void op_answer(coord_t *c, top_t *op)
{
    kh_post(c->ks, &op->post, op->origin, kh_txn__op_back, NULL, op);
}

/* PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH for versions that predate it (KIP-588). */
static int16_t fenced(const top_t *op)
{
    bool old = (op->kind == K_INIT && op->v < 4) || (op->kind == K_TXN_OFFS) ||
               (op->kind != K_INIT && op->v < 2);
    return old ? KP_ERR_INVALID_PRODUCER_EPOCH : KP_ERR_PRODUCER_FENCED;
}

/* The producer of op against t: KP_ERR_NONE when it is t's current one. */
static int16_t check_producer(const top_t *op, const txn_t *t)
{
    if (!t || t->d.pid < 0 || t->d.pid != op->pid)
        return KP_ERR_INVALID_PRODUCER_ID_MAPPING;
    if (op->epoch != t->d.epoch)
        return fenced(op);
    if (t->busy || t->d.state == TS_PREPARE_COMMIT || t->d.state == TS_PREPARE_ABORT)
        return KP_ERR_CONCURRENT_TRANSACTIONS;
    return KP_ERR_NONE;
}

/* ---- Completing a transaction: markers and offsets ---- */

typedef struct {
    kh_post_t post;
    int coord;  /* the coordinator's shard */
    coord_t *c; /* valid on the coordinator's shard only */
    txn_t *t;
    char *topic; /* owned */
    int32_t partition;
    int64_t pid;
    int16_t epoch;
    bool commit;
    int rc;
    int64_t offset;
    plog_t *log;
    plog_waiter_t waiter;
} mark_t;

typedef struct {
    kh_post_t post;
    int coord;
    coord_t *c;
    txn_t *t;
    const char *group; /* borrowed from t->d (stable while t is busy) */
    bool drop;         /* abort: only forget the pending offsets */
    int rc;
} goff_t;

static void round_done(coord_t *c, txn_t *t);

static void round_one_back(coord_t *c, txn_t *t, int rc)
{
    c->n_out--;
    if (rc != 0 && !t->round_err)
        t->round_err = rc;
    if (--t->out == 0)
        round_done(c, t);
    coord_maybe_free(c);
}

static void mark_back(rt_shard_t *sh, void *arg)
{
    mark_t *m = arg;
    (void)sh;
    coord_t *c = m->c;
    txn_t *t = m->t;
    int rc = m->rc;
    free(m->topic);
    free(m);
    round_one_back(c, t, rc);
}

static void mark_durable(void *arg, int status)
{
    mark_t *m = arg;
    kh_shard_t *ks = kh_shard_of(rt_current());
    m->rc = status;
    if (status == 0)
        kh_txn_part_marker_durable(ks, m->log, m->pid, m->epoch, m->commit, m->offset);
    kh_post(ks, &m->post, m->coord, mark_back, NULL, m);
}

static void mark_run(rt_shard_t *sh, void *arg)
{
    mark_t *m = arg;
    kh_shard_t *ks = kh_shard_of(sh);
    meta_snap_t *snap = meta_snap_get(ks->ctx->meta);
    plog_t *log = kh_local_log(ks, snap, m->topic, m->partition);
    meta_snap_put(snap);
    m->rc = 0; /* a partition deleted since needs no marker */
    if (log &&
        (m->rc = kh_txn_part_marker(ks, log, m->pid, m->epoch, m->commit, &m->offset)) == 0) {
        m->log = log;
        plog_wait_durable(log, &m->waiter, m->offset + 1, mark_durable, m);
        return;
    }
    kh_post(ks, &m->post, m->coord, mark_back, NULL, m);
}

/* The partition's shard closed for good (shutdown) before the marker was
 * written: the round fails; a restart finds Prepare* and writes it. */
static void mark_closed(rt_shard_t *sh, void *arg)
{
    mark_t *m = arg;
    m->rc = ST_E_CLOSED;
    mark_back(sh, m);
}

static void goff_back(rt_shard_t *sh, void *arg)
{
    goff_t *g = arg;
    (void)sh;
    coord_t *c = g->c;
    txn_t *t = g->t;
    int rc = g->rc;
    free(g);
    round_one_back(c, t, rc);
}

typedef struct {
    goff_t *g;
    uint64_t incarnation;
} goff_w_t;

static void goff_written(wop_t *w, int status)
{
    goff_w_t *x = w->arg;
    goff_t *g = x->g;
    gshard_t *gs = kh_group__shard();
    g->rc = status;
    for (int i = 0; status == 0 && gs && i < w->n_rows; i++) {
        goffs_row_t *r = &w->rows[i];
        if (grp_offset_put(gs->coord, r->group, x->incarnation, r->topic, r->partition, r->offset,
                           r->leader_epoch, r->metadata, r->commit_ms) != 0)
            ST_ERROR("txn", "out of memory storing offsets of group=%s", r->group);
    }
    if (status == 0) /* visible now: OffsetFetch(require_stable) may answer them */
        pend_forget(g->t->id, g->group);
    free(x);
    kh_shard_t *ks = kh_shard_of(rt_current());
    kh_post(ks, &g->post, g->coord, goff_back, NULL, g);
}

/* On the group's shard: the transaction's offsets of one group become its
 * committed offsets, through the shard's offset writer. */
static void goff_run(rt_shard_t *sh, void *arg)
{
    goff_t *g = arg;
    kh_shard_t *ks = kh_shard_of(sh);
    gshard_t *gs = kh_group__shard();
    const tdata_t *d = &g->t->d; /* read-only: the coordinator leaves it alone while busy */
    if (g->drop) {
        pend_forget(g->t->id, g->group);
        g->rc = 0;
        kh_post(ks, &g->post, g->coord, goff_back, NULL, g);
        return;
    }
    int n = 0;
    for (int i = 0; i < d->n_offs; i++)
        n += !strcmp(d->offs[i].group, g->group);
    goff_w_t *x = malloc(sizeof(*x));
    wop_t *w = x && gs ? kh_group__wop_new(n, goff_written, x) : NULL;
    if (!w) {
        free(x);
        g->rc = gs ? ST_E_NOMEM : ST_E_FAILED;
        kh_post(ks, &g->post, g->coord, goff_back, NULL, g);
        return;
    }
    x->g = g;
    /* A simple (unmanaged) commit: creates the group when unknown; the
     * incarnation keeps a group deleted meanwhile from getting them back. */
    (void)grp_commit_check(gs->coord, g->group, -1, NULL, NULL, &x->incarnation);
    int64_t now = wall_ms();
    bool ok = true;
    for (int i = 0; i < d->n_offs; i++) {
        const toff_t *o = &d->offs[i];
        if (strcmp(o->group, g->group) != 0)
            continue;
        goffs_row_t *r = &w->rows[w->n_rows++];
        r->kind = GOFFS_PUT;
        r->group = strdup(o->group);
        r->topic = strdup(o->topic);
        r->metadata = o->metadata ? strdup(o->metadata) : NULL;
        r->partition = o->partition;
        r->offset = o->offset;
        r->leader_epoch = o->leader_epoch;
        r->commit_ms = now;
        ok &= r->group && r->topic && (!o->metadata || r->metadata);
    }
    if (!ok) {
        kh_group__rows_free(w->rows, w->n_rows);
        free(w);
        free(x);
        g->rc = ST_E_NOMEM;
        kh_post(ks, &g->post, g->coord, goff_back, NULL, g);
        return;
    }
    kh_group__write(gs, w);
}

/* The group's shard closed for good (shutdown): the round fails. */
static void goff_closed(rt_shard_t *sh, void *arg)
{
    goff_t *g = arg;
    g->rc = ST_E_CLOSED;
    goff_back(sh, g);
}

/* Start the marker round of t (busy, in a Prepare* state). */
static void round_start(coord_t *c, txn_t *t)
{
    bool commit = t->d.state == TS_PREPARE_COMMIT;
    int me = rt_shard_id(c->ks->sh), n_shards = rt_shard_count(c->ks->ctx->rt);
    t->round_err = 0;
    t->out = 1; /* the round's own hold */
    c->n_out++;
    for (int i = 0; i < t->d.n_tps; i++) {
        mark_t *m = calloc(1, sizeof(*m));
        if (m && !(m->topic = strdup(t->d.tps[i].topic))) {
            free(m);
            m = NULL;
        }
        if (!m) {
            t->round_err = ST_E_NOMEM;
            break;
        }
        m->coord = me;
        m->c = c;
        m->t = t;
        m->partition = t->d.tps[i].partition;
        m->pid = t->d.pid;
        m->epoch = t->d.epoch;
        m->commit = commit;
        t->out++;
        c->n_out++;
        kh_post(c->ks, &m->post, kh_owner(c->ks, m->topic, m->partition), mark_run, mark_closed, m);
    }
    for (int i = 0; !t->round_err && i < t->d.n_groups; i++) {
        bool any = false;
        for (int j = 0; j < t->d.n_offs && !any; j++)
            any = !strcmp(t->d.offs[j].group, t->d.groups[i]);
        if (!any)
            continue;
        goff_t *g = calloc(1, sizeof(*g));
        if (!g) {
            t->round_err = ST_E_NOMEM;
            break;
        }
        /* Commit: the offsets become the group's (and stop being pending)
         * on its shard at once; abort: they are only forgotten there. */
        *g = (goff_t){.coord = me, .c = c, .t = t, .group = t->d.groups[i], .drop = !commit};
        t->out++;
        c->n_out++;
        kh_post(c->ks, &g->post, rt_shard_for(g->group, 0, n_shards), goff_run, goff_closed, g);
    }
    round_one_back(c, t, 0); /* drop the hold */
}

static void completed(coord_t *c, txn_t *t, int status, void *arg)
{
    (void)arg;
    t->busy = false;
    top_t *op = t->waiter;
    t->waiter = NULL;
    if (status != 0)
        ST_WARN("txn", "cannot complete transaction id=%s: %s", t->id, st_strerror(status));
    else
        ST_DEBUG("txn", "transaction id=%s %s", t->id, kh_txn__state_names[t->d.state]);
    if (op) {
        op->err = status ? KP_ERR_COORDINATOR_NOT_AVAILABLE : KP_ERR_NONE;
        op_answer(c, op);
    }
}

static void round_done(coord_t *c, txn_t *t)
{
    if (t->round_err) {
        /* Stay in Prepare*: the timer runs the round again. */
        ST_WARN("txn", "transaction id=%s: markers not all written (%s), will retry", t->id,
                st_strerror(t->round_err));
        completed(c, t, t->round_err, NULL);
        return;
    }
    tdata_t next;
    kh_txn__bare(&next, &t->d);
    next.state = t->d.state == TS_PREPARE_COMMIT ? TS_COMPLETE_COMMIT : TS_COMPLETE_ABORT;
    persist(c, t, &next, completed, NULL);
}

static void prepared(coord_t *c, txn_t *t, int status, void *arg)
{
    (void)arg;
    if (status != 0) {
        completed(c, t, status, NULL);
        return;
    }
    round_start(c, t);
}

/* Abort t (not busy, Ongoing) with its epoch bumped: fences its producer. */
static void abort_bumped(coord_t *c, txn_t *t, const char *why)
{
    tdata_t next;
    if (kh_txn__copy(&next, &t->d, 0, 0, 0) != 0)
        return;
    ST_INFO("txn", "aborting transaction id=%s pid=%lld epoch=%d: %s", t->id, (long long)t->d.pid,
            t->d.epoch, why);
    next.state = TS_PREPARE_ABORT;
    if (next.epoch < TXN_EPOCH_MAX) {
        next.last_epoch = next.epoch;
        next.epoch++;
    }
    t->busy = true;
    persist(c, t, &next, prepared, NULL);
}

/* ---- Timer: timeouts, unfinished rounds ---- */

/* ---- Expiry of idle transactional ids (transactional.id.expiration.ms) ---- */

typedef struct {
    uv_work_t work;
    coord_t *c;
    txn_t *t;
    int rc;
} xwork_t;

static void expire_work(uv_work_t *w)
{
    xwork_t *x = w->data;
    x->rc = meta_txn_put(x->c->ks->ctx->meta, x->t->id, NULL, 0);
}

static void expire_after(uv_work_t *w, int status)
{
    xwork_t *x = w->data;
    coord_t *c = x->c;
    txn_t *t = x->t;
    bool gone = status == 0 && x->rc == 0;
    free(x);
    c->n_out--;
    t->busy = false;
    if (gone) {
        ST_INFO("txn", "transactional id=%s expired (transactional.id.expiration.ms)", t->id);
        for (txn_t **pp = &c->txns; *pp; pp = &(*pp)->next)
            if (*pp == t) {
                *pp = t->next;
                break;
            }
        kh_txn__fini(&t->d);
        free(t->id);
        free(t);
    }
    coord_maybe_free(c);
}

/* Forget t (not busy, no open transaction): its row first, then memory. */
static void expire(coord_t *c, txn_t *t)
{
    xwork_t *x = calloc(1, sizeof(*x));
    if (!x)
        return;
    *x = (xwork_t){.c = c, .t = t};
    x->work.data = x;
    t->busy = true;
    c->n_out++;
    if (uv_queue_work(rt_shard_loop(c->ks->sh), &x->work, expire_work, expire_after) != 0) {
        c->n_out--;
        t->busy = false;
        free(x);
    }
}

static void on_tick(uv_timer_t *h)
{
    coord_t *c = h->data;
    int64_t now = wall_ms();
    for (txn_t *t = c->txns; t && !c->closing; t = t->next) {
        if (t->busy)
            continue;
        if (t->d.state == TS_ONGOING && now - t->d.start_ms > t->d.timeout_ms) {
            st_metric_add(ST_M_TXN_TIMEOUTS, 1);
            abort_bumped(c, t, "transaction.timeout.ms passed");
        } else if (t->d.state == TS_PREPARE_COMMIT || t->d.state == TS_PREPARE_ABORT) {
            t->busy = true;
            round_start(c, t);
        } else if (t->d.state != TS_ONGOING &&
                   now - t->touched_ms > c->ks->ctx->txn_id_expiration_ms) {
            expire(c, t);
        }
    }
}

/* ---- Partition registrations (AddPartitionsToTxn, recovery) ---- */

typedef struct reg {
    kh_post_t post;
    struct reg *next_wait; /* in t_reg_wait */
    int coord;
    top_t *op;   /* NULL at recovery */
    char *topic; /* owned */
    int32_t partition;
    int64_t pid;
    int16_t epoch;
    int16_t *err; /* the partition's response slot, or NULL */
    int16_t res;
} reg_t;

static void add_parts_answer(coord_t *c, top_t *op);

static void reg_back(rt_shard_t *sh, void *arg)
{
    reg_t *r = arg;
    (void)sh;
    coord_t *c = t_coord;
    top_t *op = r->op;
    if (r->err)
        *r->err = r->res;
    free(r->topic);
    free(r);
    if (c)
        c->n_out--;
    if (op && --op->regs_out == 0 && c)
        add_parts_answer(c, op);
    if (c)
        coord_maybe_free(c);
}

/* Registrations that reached this shard before its Kafka layer served (at
 * start, the coordinators re-register open transactions while the other
 * shards may still be resuming): done by kh_txn_shard_start. */
static _Thread_local reg_t *t_reg_wait;

static void reg_do(kh_shard_t *ks, reg_t *r)
{
    meta_snap_t *snap = meta_snap_get(ks->ctx->meta);
    plog_t *log = kh_local_log(ks, snap, r->topic, r->partition);
    meta_snap_put(snap);
    r->res = log ? kh_txn_part_begin(ks, log, r->pid, r->epoch) : KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    kh_post(ks, &r->post, r->coord, reg_back, NULL, r);
}

static void reg_run(rt_shard_t *sh, void *arg)
{
    reg_t *r = arg;
    kh_shard_t *ks = kh_shard_of(sh);
    if (!ks) {
        r->next_wait = t_reg_wait;
        t_reg_wait = r;
        return;
    }
    reg_do(ks, r);
}

/* The partition's shard closed for good (shutdown) before the registration. */
static void reg_closed(rt_shard_t *sh, void *arg)
{
    reg_t *r = arg;
    r->res = KP_ERR_NOT_LEADER_OR_FOLLOWER;
    reg_back(sh, r);
}

static bool
reg_post(coord_t *c, top_t *op, const char *topic, int32_t p, const txn_t *t, int16_t *err)
{
    reg_t *r = calloc(1, sizeof(*r));
    if (r && !(r->topic = strdup(topic))) {
        free(r);
        r = NULL;
    }
    if (!r)
        return false;
    r->coord = rt_shard_id(c->ks->sh);
    r->op = op;
    r->partition = p;
    r->pid = t->d.pid;
    r->epoch = t->d.epoch;
    r->err = err;
    c->n_out++;
    if (op)
        op->regs_out++;
    kh_post(c->ks, &r->post, kh_owner(c->ks, topic, p), reg_run, reg_closed, r);
    return true;
}

/* ---- InitProducerId ---- */

typedef struct {
    uv_work_t work;
    coord_t *c;
    txn_t *t;
    top_t *op;
    int64_t pid;
} pid_work_t;

static void init_persisted(coord_t *c, txn_t *t, int status, void *arg)
{
    top_t *op = arg;
    t->busy = false;
    if (status != 0) {
        op->err = KP_ERR_COORDINATOR_NOT_AVAILABLE;
    } else {
        op->res_pid = t->d.pid;
        op->res_epoch = t->d.epoch;
        ST_DEBUG("txn", "transactional id=%s pid=%lld epoch=%d", t->id, (long long)t->d.pid,
                 t->d.epoch);
    }
    op_answer(c, op);
}

/* The new state after InitProducerId: pid (a new one) or the epoch bumped. */
static void init_store(coord_t *c, txn_t *t, top_t *op, int64_t new_pid)
{
    tdata_t next;
    kh_txn__bare(&next, &t->d);
    if (new_pid >= 0) {
        next.pid = new_pid;
        next.epoch = 0;
    } else {
        next.epoch++;
    }
    next.last_epoch = -1;
    next.timeout_ms = op->timeout_ms;
    next.state = TS_EMPTY;
    next.start_ms = 0;
    persist(c, t, &next, init_persisted, op);
}

static void pid_alloc(uv_work_t *w)
{
    pid_work_t *pw = w->data;
    pw->pid = meta_next_producer_id(pw->c->ks->ctx->meta);
}

static void pid_done(uv_work_t *w, int status)
{
    pid_work_t *pw = w->data;
    coord_t *c = pw->c;
    txn_t *t = pw->t;
    top_t *op = pw->op;
    int64_t pid = status == 0 ? pw->pid : -1;
    free(pw);
    c->n_out--;
    if (pid < 0) {
        t->busy = false;
        op->err = KP_ERR_COORDINATOR_NOT_AVAILABLE;
        op_answer(c, op);
    } else {
        init_store(c, t, op, pid);
    }
    coord_maybe_free(c);
}

static void init_run(coord_t *c, top_t *op)
{
    txn_t *t = txn_find(c, op->txn_id);
    if (!t && !(t = txn_new(c, op->txn_id))) {
        op->err = KP_ERR_COORDINATOR_NOT_AVAILABLE;
        op_answer(c, op);
        return;
    }
    if (t->busy || t->d.state == TS_PREPARE_COMMIT || t->d.state == TS_PREPARE_ABORT) {
        op->err = KP_ERR_CONCURRENT_TRANSACTIONS;
        op_answer(c, op);
        return;
    }
    /* KIP-360: a producer that names its id and epoch must be the current one
     * (or the one whose transaction the coordinator aborted with a bump). */
    if (op->pid >= 0 && t->d.pid >= 0 &&
        (op->pid != t->d.pid || (op->epoch != t->d.epoch && op->epoch != t->d.last_epoch))) {
        op->err = fenced(op);
        op_answer(c, op);
        return;
    }
    if (t->d.state == TS_ONGOING) {
        /* Abort what the previous producer left open; the client retries. */
        abort_bumped(c, t, "a new producer initialised the transactional id");
        op->err = KP_ERR_CONCURRENT_TRANSACTIONS;
        op_answer(c, op);
        return;
    }
    t->busy = true;
    if (t->d.pid >= 0 && t->d.epoch < TXN_EPOCH_MAX) {
        init_store(c, t, op, -1);
        return;
    }
    pid_work_t *pw = calloc(1, sizeof(*pw));
    if (!pw) {
        t->busy = false;
        op->err = KP_ERR_COORDINATOR_NOT_AVAILABLE;
        op_answer(c, op);
        return;
    }
    *pw = (pid_work_t){.c = c, .t = t, .op = op};
    pw->work.data = pw;
    c->n_out++;
    if (uv_queue_work(rt_shard_loop(c->ks->sh), &pw->work, pid_alloc, pid_done) != 0) {
        c->n_out--;
        free(pw);
        t->busy = false;
        op->err = KP_ERR_COORDINATOR_NOT_AVAILABLE;
        op_answer(c, op);
    }
}

/* ---- AddPartitionsToTxn ---- */

static bool has_tp(const tdata_t *d, const char *topic, int32_t p)
{
    for (int i = 0; i < d->n_tps; i++)
        if (d->tps[i].partition == p && !strcmp(d->tps[i].topic, topic))
            return true;
    return false;
}

void kh_txn__set_all(top_t *op, int16_t err)
{
    for (int i = 0; i < op->n_topics; i++)
        for (int j = 0; j < op->results[i].n_results_by_partition; j++)
            if (!op->results[i].results_by_partition[j].partition_error_code)
                op->results[i].results_by_partition[j].partition_error_code = err;
}

static void add_parts_answer(coord_t *c, top_t *op)
{
    txn_t *t = txn_find(c, op->txn_id);
    if (t)
        t->busy = false;
    op_answer(c, op);
}

static void add_parts_persisted(coord_t *c, txn_t *t, int status, void *arg)
{
    top_t *op = arg;
    if (status != 0) {
        t->busy = false;
        kh_txn__set_all(op, KP_ERR_COORDINATOR_NOT_AVAILABLE);
        op_answer(c, op);
        return;
    }
    /* Register the producer on every partition of the request before the
     * answer: its Produce may follow at once. Already registered ones are
     * registered again (harmless), which also covers a restart. */
    op->regs_out = 1; /* hold */
    for (int i = 0; i < op->n_topics; i++) {
        const kp_add_partitions_to_txn_request_topic_t *qt = &op->topics[i];
        kp_add_partitions_to_txn_response_topic_result_t *rt = &op->results[i];
        char topic[256];
        snprintf(topic, sizeof(topic), "%.*s", qt->name.len, qt->name.ptr);
        for (int j = 0; j < rt->n_results_by_partition; j++) {
            kp_add_partitions_to_txn_response_partition_result_t *rp = &rt->results_by_partition[j];
            if (!reg_post(c, op, topic, rp->partition_index, t, &rp->partition_error_code))
                rp->partition_error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
        }
    }
    if (--op->regs_out == 0)
        add_parts_answer(c, op);
}

static void add_parts_run(coord_t *c, top_t *op)
{
    txn_t *t = txn_find(c, op->txn_id);
    int16_t err = check_producer(op, t);
    if (err) {
        kh_txn__set_all(op, err);
        op_answer(c, op);
        return;
    }
    int n_new = 0;
    for (int i = 0; i < op->n_topics; i++) {
        const kp_add_partitions_to_txn_request_topic_t *qt = &op->topics[i];
        char topic[256];
        snprintf(topic, sizeof(topic), "%.*s", qt->name.len, qt->name.ptr);
        kp_add_partitions_to_txn_response_topic_result_t *rt = &op->results[i];
        for (int j = 0; j < rt->n_results_by_partition; j++) {
            kp_add_partitions_to_txn_response_partition_result_t *rp = &rt->results_by_partition[j];
            bool in = has_tp(&t->d, topic, rp->partition_index);
            if (op->verify_only)
                rp->partition_error_code =
                    in && t->d.state == TS_ONGOING ? KP_ERR_NONE : KP_ERR_INVALID_TXN_STATE;
            n_new += !in;
        }
    }
    if (op->verify_only) {
        op_answer(c, op);
        return;
    }
    tdata_t next;
    if (kh_txn__copy(&next, &t->d, n_new, 0, 0) != 0) {
        kh_txn__set_all(op, KP_ERR_COORDINATOR_NOT_AVAILABLE);
        op_answer(c, op);
        return;
    }
    for (int i = 0; i < op->n_topics; i++) {
        const kp_add_partitions_to_txn_request_topic_t *qt = &op->topics[i];
        char topic[256];
        snprintf(topic, sizeof(topic), "%.*s", qt->name.len, qt->name.ptr);
        kp_add_partitions_to_txn_response_topic_result_t *rt = &op->results[i];
        for (int j = 0; j < rt->n_results_by_partition; j++) {
            int32_t p = rt->results_by_partition[j].partition_index;
            if (has_tp(&next, topic, p))
                continue;
            char *s = strdup(topic);
            if (!s) {
                kh_txn__fini(&next);
                kh_txn__set_all(op, KP_ERR_COORDINATOR_NOT_AVAILABLE);
                op_answer(c, op);
                return;
            }
            next.tps[next.n_tps++] = (ttp_t){s, p};
        }
    }
    if (next.state != TS_ONGOING) {
        next.state = TS_ONGOING;
        next.start_ms = wall_ms();
    }
    t->busy = true;
    persist(c, t, &next, add_parts_persisted, op);
}

/* ---- AddOffsetsToTxn, TxnOffsetCommit ---- */

static void simple_persisted(coord_t *c, txn_t *t, int status, void *arg)
{
    top_t *op = arg;
    t->busy = false;
    op->err = status ? KP_ERR_COORDINATOR_NOT_AVAILABLE : KP_ERR_NONE;
    op_answer(c, op);
}

static void add_offs_run(coord_t *c, top_t *op)
{
    txn_t *t = txn_find(c, op->txn_id);
    int16_t err = check_producer(op, t);
    if (err) {
        op->err = err;
        op_answer(c, op);
        return;
    }
    bool in = false;
    for (int i = 0; i < t->d.n_groups && !in; i++)
        in = !strcmp(t->d.groups[i], op->group);
    if (in && t->d.state == TS_ONGOING) {
        op_answer(c, op);
        return;
    }
    tdata_t next;
    if (kh_txn__copy(&next, &t->d, 0, 1, 0) != 0) {
        op->err = KP_ERR_COORDINATOR_NOT_AVAILABLE;
        op_answer(c, op);
        return;
    }
    if (!in && !(next.groups[next.n_groups++] = strdup(op->group))) {
        kh_txn__fini(&next);
        op->err = KP_ERR_COORDINATOR_NOT_AVAILABLE;
        op_answer(c, op);
        return;
    }
    if (next.state != TS_ONGOING) {
        next.state = TS_ONGOING;
        next.start_ms = wall_ms();
    }
    t->busy = true;
    persist(c, t, &next, simple_persisted, op);
}

void kh_txn__toc_set_all(kp_txn_offset_commit_response_t *r, int16_t err)
{
    for (int i = 0; i < r->n_topics; i++)
        for (int j = 0; j < r->topics[i].n_partitions; j++)
            if (!r->topics[i].partitions[j].error_code)
                r->topics[i].partitions[j].error_code = err;
}

static void toc_persisted(coord_t *c, txn_t *t, int status, void *arg)
{
    top_t *op = arg;
    t->busy = false;
    if (status)
        kh_txn__toc_set_all(op->toc, KP_ERR_COORDINATOR_NOT_AVAILABLE);
    for (int i = 0; !status && i < t->d.n_offs; i++)
        pend_post(c, t, t->d.offs[i].group, &t->d.offs[i]);
    op_answer(c, op);
}

static void txn_offs_run(coord_t *c, top_t *op)
{
    txn_t *t = txn_find(c, op->txn_id);
    kp_txn_offset_commit_request_t *q = op->req->msg;
    kp_txn_offset_commit_response_t *r = op->toc;
    int16_t err = check_producer(op, t);
    bool in = false;
    for (int i = 0; !err && i < t->d.n_groups && !in; i++)
        in = !strcmp(t->d.groups[i], op->group);
    if (!err && (!in || t->d.state != TS_ONGOING))
        err = KP_ERR_INVALID_TXN_STATE; /* AddOffsetsToTxn first */
    int n = 0;
    for (int i = 0; i < r->n_topics; i++)
        n += r->topics[i].n_partitions;
    tdata_t next;
    if (!err && kh_txn__copy(&next, &t->d, 0, 0, n) != 0)
        err = KP_ERR_COORDINATOR_NOT_AVAILABLE;
    if (err) {
        kh_txn__toc_set_all(r, err);
        op_answer(c, op);
        return;
    }
    bool ok = true;
    for (int i = 0; i < r->n_topics; i++) {
        kp_txn_offset_commit_request_topic_t *qt = &q->topics[i];
        for (int j = 0; j < r->topics[i].n_partitions; j++) {
            if (r->topics[i].partitions[j].error_code)
                continue;
            kp_txn_offset_commit_request_partition_t *qp = &qt->partitions[j];
            char *topic = strndup(qt->name.ptr, (size_t)qt->name.len);
            toff_t *o = NULL;
            for (int k = 0; topic && k < next.n_offs && !o; k++)
                if (next.offs[k].partition == qp->partition_index &&
                    !strcmp(next.offs[k].topic, topic) && !strcmp(next.offs[k].group, op->group))
                    o = &next.offs[k];
            if (o) {
                free(topic);
                free(o->metadata);
            } else {
                o = &next.offs[next.n_offs++];
                *o = (toff_t){.group = strdup(op->group), .topic = topic};
                ok &= o->group && o->topic;
            }
            o->partition = qp->partition_index;
            o->offset = qp->committed_offset;
            o->leader_epoch = op->v >= 2 ? qp->committed_leader_epoch : -1;
            o->metadata =
                qp->committed_metadata.len >= 0
                    ? strndup(qp->committed_metadata.ptr ? qp->committed_metadata.ptr : "",
                              (size_t)qp->committed_metadata.len)
                    : NULL;
            ok &= qp->committed_metadata.len < 0 || o->metadata;
        }
    }
    if (!ok) {
        kh_txn__fini(&next);
        kh_txn__toc_set_all(r, KP_ERR_COORDINATOR_NOT_AVAILABLE);
        op_answer(c, op);
        return;
    }
    t->busy = true;
    persist(c, t, &next, toc_persisted, op);
}

/* ---- EndTxn ---- */

static void end_run(coord_t *c, top_t *op)
{
    txn_t *t = txn_find(c, op->txn_id);
    int16_t err = check_producer(op, t);
    if (!err) {
        tstate_t s = t->d.state;
        if (s == TS_COMPLETE_COMMIT || s == TS_COMPLETE_ABORT) /* a retry, or a mismatch */
            err = (s == TS_COMPLETE_COMMIT) == op->commit ? KP_ERR_NONE : KP_ERR_INVALID_TXN_STATE;
        else if (s != TS_ONGOING)
            err = KP_ERR_INVALID_TXN_STATE;
        else
            goto end;
    }
    op->err = err;
    op_answer(c, op);
    return;
end:;
    tdata_t next;
    if (kh_txn__copy(&next, &t->d, 0, 0, 0) != 0) {
        op->err = KP_ERR_COORDINATOR_NOT_AVAILABLE;
        op_answer(c, op);
        return;
    }
    next.state = op->commit ? TS_PREPARE_COMMIT : TS_PREPARE_ABORT;
    t->busy = true;
    t->waiter = op;
    persist(c, t, &next, prepared, NULL);
}

/* ---- DescribeTransactions, ListTransactions ---- */

static kp_str_t arena_str(kp_arena_t *a, const char *s)
{
    size_t n = strlen(s);
    char *p = kp_arena_alloc(a, n + 1);
    if (!p)
        return KP_STR_LIT("");
    memcpy(p, s, n + 1);
    return (kp_str_t){p, (int32_t)n};
}

static void describe_run(coord_t *c, top_t *op)
{
    kp_describe_transactions_response_transaction_state_t *r = op->desc;
    txn_t *t = txn_find(c, op->txn_id);
    if (!t || t->d.pid < 0) {
        r->error_code = KP_ERR_TRANSACTIONAL_ID_NOT_FOUND;
        op_answer(c, op);
        return;
    }
    const tdata_t *d = &t->d;
    r->transaction_state = kp_str_from_cstr(kh_txn__state_names[d->state]);
    r->transaction_timeout_ms = d->timeout_ms;
    r->transaction_start_time_ms = d->state == TS_EMPTY ? -1 : d->start_ms;
    r->producer_id = d->pid;
    r->producer_epoch = d->epoch;
    /* Partitions by topic, in the order they were added. */
    r->topics = kp_arena_calloc(&op->arena, (size_t)d->n_tps + 1, sizeof(*r->topics));
    int32_t *parts = kp_arena_calloc(&op->arena, (size_t)d->n_tps + 1, sizeof(*parts));
    if (!r->topics || !parts) {
        r->error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
        r->topics = NULL;
        op_answer(c, op);
        return;
    }
    for (int i = 0, used = 0; i < d->n_tps; i++) {
        int k = 0;
        while (k < r->n_topics && strcmp(r->topics[k].topic.ptr, d->tps[i].topic) != 0)
            k++;
        if (k < r->n_topics)
            continue; /* that topic was listed with its first partition */
        kp_describe_transactions_response_topic_data_t *td = &r->topics[r->n_topics++];
        td->topic = arena_str(&op->arena, d->tps[i].topic);
        td->partitions = parts + used;
        for (int j = i; j < d->n_tps; j++)
            if (!strcmp(d->tps[j].topic, d->tps[i].topic))
                td->partitions[td->n_partitions++] = d->tps[j].partition;
        used += td->n_partitions;
    }
    op_answer(c, op);
}

static bool list_match(const top_t *op, const txn_t *t, int64_t now)
{
    const kp_list_transactions_request_t *q = op->req->msg;
    const char *name = kh_txn__state_names[t->d.state];
    bool ok = q->n_state_filters <= 0;
    for (int i = 0; !ok && i < q->n_state_filters; i++)
        ok = q->state_filters[i].len == (int32_t)strlen(name) &&
             !memcmp(q->state_filters[i].ptr, name, (size_t)q->state_filters[i].len);
    bool pid_ok = q->n_producer_id_filters <= 0;
    for (int i = 0; !pid_ok && i < q->n_producer_id_filters; i++)
        pid_ok = q->producer_id_filters[i] == t->d.pid;
    /* v1 (KIP-994): only transactions open for longer than duration_filter ms. */
    bool dur_ok = op->v < 1 || q->duration_filter < 0 ||
                  (t->d.state == TS_ONGOING && now - t->d.start_ms > q->duration_filter);
    return ok && pid_ok && dur_ok && t->d.pid >= 0;
}

static void list_run(coord_t *c, top_t *op)
{
    int64_t now = wall_ms();
    int n = 0;
    for (txn_t *t = c->txns; t; t = t->next)
        n += list_match(op, t, now);
    op->list = kp_arena_calloc(&op->arena, (size_t)n + 1, sizeof(*op->list));
    for (txn_t *t = c->txns; op->list && t; t = t->next) {
        if (!list_match(op, t, now))
            continue;
        op->list[op->n_list++] = (kp_list_transactions_response_transaction_state_t){
            arena_str(&op->arena, t->id), t->d.pid,
            kp_str_from_cstr(kh_txn__state_names[t->d.state])};
    }
    if (!op->list)
        op->err = KP_ERR_UNKNOWN_SERVER_ERROR;
    op_answer(c, op);
}

kh_txn_info_t *kh_txn_snapshot(int *n_out)
{
    coord_t *c = t_coord;
    int n = 0;
    *n_out = 0;
    for (txn_t *t = c ? c->txns : NULL; t; t = t->next)
        n += t->d.pid >= 0;
    kh_txn_info_t *v = n ? calloc((size_t)n, sizeof(*v)) : NULL;
    if (!v)
        return NULL;
    int k = 0;
    for (txn_t *t = c->txns; t; t = t->next) {
        if (t->d.pid < 0)
            continue;
        kh_txn_info_t *x = &v[k++];
        const tdata_t *d = &t->d;
        *x = (kh_txn_info_t){strdup(t->id),
                             d->pid,
                             d->epoch,
                             kh_txn__state_names[d->state],
                             d->timeout_ms,
                             is_open(d->state) ? d->start_ms : -1,
                             0,
                             calloc((size_t)d->n_tps + 1, sizeof(char *)),
                             calloc((size_t)d->n_tps + 1, sizeof(int32_t)),
                             d->n_groups};
        bool ok = x->id && x->topics && x->partitions;
        for (int i = 0; ok && i < d->n_tps; i++, x->n_partitions++) {
            ok = (x->topics[i] = strdup(d->tps[i].topic)) != NULL;
            x->partitions[i] = d->tps[i].partition;
        }
        if (!ok) {
            kh_txn_info_free(v, k);
            return NULL;
        }
    }
    *n_out = k;
    return v;
}

void kh_txn_info_free(kh_txn_info_t *v, int n)
{
    for (int i = 0; v && i < n; i++) {
        for (int j = 0; j < v[i].n_partitions; j++)
            free(v[i].topics[j]);
        free(v[i].topics);
        free(v[i].partitions);
        free(v[i].id);
    }
    free(v);
}

bool kh_txn__state_known(kp_str_t s)
{
    for (int i = 0; i < TS_N; i++)
        if (s.len == (int32_t)strlen(kh_txn__state_names[i]) &&
            !memcmp(s.ptr, kh_txn__state_names[i], (size_t)s.len))
            return true;
    return false;
}

/* ---- Running an op ---- */

/* No coordinator to run op (closing, or its shard closed): the answer. */
static void op_unavailable(top_t *op)
{
    op->err = KP_ERR_COORDINATOR_NOT_AVAILABLE;
    if (op->kind == K_ADD_PARTS)
        kh_txn__set_all(op, op->err);
    if (op->kind == K_TXN_OFFS)
        kh_txn__toc_set_all(op->toc, op->err);
    if (op->kind == K_DESCRIBE)
        op->desc->error_code = op->err;
}

void kh_txn__op_closed(rt_shard_t *sh, void *arg)
{
    op_unavailable(arg);
    kh_txn__op_back(sh, arg);
}

void kh_txn__op_run(rt_shard_t *sh, void *arg)
{
    top_t *op = arg;
    (void)sh;
    coord_t *c = t_coord;
    if (!c || c->closing) {
        op_unavailable(op);
        kh_post(kh_shard_of(sh), &op->post, op->origin, kh_txn__op_back, NULL, op);
        return;
    }
    switch (op->kind) {
    case K_INIT:
        init_run(c, op);
        break;
    case K_ADD_PARTS:
        add_parts_run(c, op);
        break;
    case K_ADD_OFFS:
        add_offs_run(c, op);
        break;
    case K_TXN_OFFS:
        txn_offs_run(c, op);
        break;
    case K_END:
        end_run(c, op);
        break;
    case K_DESCRIBE:
        describe_run(c, op);
        break;
    case K_LIST:
        list_run(c, op);
        break;
    }
}

/* ---- Shard start / stop ---- */

typedef struct {
    coord_t *c;
    int me, n;
    int loaded;
} load_t;

static int load_row(void *arg, const char *id, const void *blob, size_t len)
{
    load_t *l = arg;
    if (rt_shard_for(id, 0, l->n) != l->me)
        return 0;
    tdata_t d;
    if (kh_txn__decode(&d, blob, len) != 0) {
        ST_ERROR("txn", "stored transaction id=%s is unreadable: ignored", id);
        return 0;
    }
    txn_t *t = txn_new(l->c, id);
    if (!t) {
        kh_txn__fini(&d);
        return ST_E_NOMEM;
    }
    t->d = d;
    if (is_open(d.state))
        st_metric_add(ST_M_TXN_OPEN, 1);
    l->loaded++;
    return 0;
}

void kh_txn_shard_start(kh_shard_t *ks)
{
    const kh_ctx_t *ctx = ks->ctx;
    coord_t *c = calloc(1, sizeof(*c));
    if (!c) {
        ST_ERROR("txn", "out of memory starting the transaction coordinator");
        return;
    }
    c->ks = ks;
    t_coord = c;
    load_t l = {c, rt_shard_id(ks->sh), rt_shard_count(ctx->rt), 0};
    char err[256] = "";
    if (meta_txn_load(ctx->meta, load_row, &l, err, sizeof(err)) != 0)
        ST_ERROR("txn", "cannot load transactions: %s", err[0] ? err : "out of memory");
    /* Recovery: open transactions get their partitions registered again
     * (Produce may continue them); Prepare* ones get their markers written
     * by the first tick. */
    int n_open = 0, n_prep = 0;
    for (txn_t *t = c->txns; t; t = t->next) {
        for (int i = 0; i < t->d.n_offs; i++) /* consumers wait for them (require_stable) */
            pend_post(c, t, t->d.offs[i].group, &t->d.offs[i]);
        if (t->d.state == TS_ONGOING) {
            n_open++;
            for (int i = 0; i < t->d.n_tps; i++)
                if (!reg_post(c, NULL, t->d.tps[i].topic, t->d.tps[i].partition, t, NULL))
                    ST_ERROR("txn", "out of memory re-registering transaction id=%s", t->id);
        }
        n_prep += t->d.state == TS_PREPARE_COMMIT || t->d.state == TS_PREPARE_ABORT;
    }
    if (l.loaded)
        ST_INFO("txn", "shard=%d loaded %d transactional ids (%d open, %d to complete)", l.me,
                l.loaded, n_open, n_prep);
    uv_timer_init(rt_shard_loop(ks->sh), &c->timer);
    c->timer.data = c;
    int64_t every = ctx->txn_check_interval_ms > 0 ? ctx->txn_check_interval_ms : 10000;
    uv_timer_start(&c->timer, on_tick, n_prep ? 0 : (uint64_t)every, (uint64_t)every);
    while (t_reg_wait) {
        reg_t *r = t_reg_wait;
        t_reg_wait = r->next_wait;
        reg_do(ks, r);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    coord_t *c = h->data;
    c->timer_closed = true;
    coord_maybe_free(c);
}

bool kh_txn_shard_is_closed(kh_shard_t *ks)
{
    (void)ks;
    return t_coord == NULL;
}

void kh_txn_shard_close(kh_shard_t *ks)
{
    (void)ks;
    coord_t *c = t_coord;
    if (!c || c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}
