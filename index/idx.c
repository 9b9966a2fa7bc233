/* idx.c - the index thread, its queue, and per-loop clients.
 * Data path: a shard or the tiering loop submits an operation (idx_*()) ->
 * it is copied into an idx__op_t and queued -> the index thread runs it
 * against the database (idx_db.c) -> the op moves to its client's done list
 * and the client's uv_async_t wakes the client's loop -> the callback runs
 * there and the op is freed.
 * Invariants: 1. only the index thread touches the sqlite3 connection;
 *             2. an op belongs to the submitter until queued, then to the
 *                index thread, then to the client's loop: never two at once;
 *             3. a client is freed only after its last pending op was
 *                delivered, so the thread never posts to a freed client.
 *
 * Client states:
 *   OPEN --idx_client_close()--> CLOSING (pending > 0: keeps delivering)
 *   CLOSING --last op delivered / none pending--> uv_close --> freed, close cb
 */
#include "index/idx_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/st_assert.h"

struct idx {
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond;
    idx__op_t *head, *tail; /* owned: queued ops, FIFO */
    bool is_stopping;
    idx__db_t *db; /* owned by the index thread */

    /* Startup hand-off: the thread opens the database and reports here. */
    uv_sem_t opened;
    const char *path; /* borrowed: valid during idx_open */
    int open_rc;
    char *errbuf;
    size_t errbuf_len;
};

struct idx_client {
    idx_t *idx; /* borrowed: outlives the client */
    uv_loop_t *loop;
    uv_async_t async; /* embedded: freed in its close callback */
    uv_mutex_t mu;
    idx__op_t *done_head, *done_tail; /* owned: finished ops, under mu */
    size_t n_pending;                 /* submitted, not delivered (loop only) */
    bool is_closing;
    idx_closed_cb closed_cb;
    void *closed_arg;
};

/* ---- Index thread ---- */

static void deliver(idx__op_t *op)
{
    idx_client_t *c = op->client;
    uv_mutex_lock(&c->mu);
    if (c->done_tail)
        c->done_tail->next = op;
    else
        c->done_head = op;
    c->done_tail = op;
    op->next = NULL;
    /* Send under the lock: the loop cannot take this op (and then free a
     * closing client) before the send has returned. */
    uv_async_send(&c->async);
    uv_mutex_unlock(&c->mu);
}

static void thread_main(void *arg)
{
    idx_t *idx = arg;
    idx->open_rc = idx__db_open(idx->path, &idx->db, idx->errbuf, idx->errbuf_len);
    int rc = idx->open_rc;
    uv_sem_post(&idx->opened); /* idx_open may free nothing of ours until joined */
    if (rc != 0)
        return;
    for (;;) {
        uv_mutex_lock(&idx->mu);
        while (!idx->head && !idx->is_stopping)
            uv_cond_wait(&idx->cond, &idx->mu);
        idx__op_t *op = idx->head;
        if (op) {
            idx->head = op->next;
            if (!idx->head)
                idx->tail = NULL;
        }
        uv_mutex_unlock(&idx->mu);
        if (!op)
            break; /* stopping and drained */
        idx__db_run(idx->db, op);
        deliver(op);
    }
    idx__db_close(idx->db);
    idx->db = NULL;
}

int idx_open(const char *path, idx_t **out, char *errbuf, size_t errbuf_len)
{
    if (errbuf && errbuf_len)
        errbuf[0] = '\0';
    idx_t *idx = calloc(1, sizeof *idx);
    if (!idx)
        return ST_E_NOMEM;
    idx->path = path;
    idx->errbuf = errbuf;
    idx->errbuf_len = errbuf_len;
    int rc = uv_mutex_init(&idx->mu);
    if (rc != 0)
        goto fail_free;
    if ((rc = uv_cond_init(&idx->cond)) != 0)
        goto fail_mu;
    if ((rc = uv_sem_init(&idx->opened, 0)) != 0)
        goto fail_cond;
    if ((rc = uv_thread_create(&idx->thread, thread_main, idx)) != 0)
        goto fail_sem;
    uv_sem_wait(&idx->opened);
    if (idx->open_rc != 0) {
        rc = idx->open_rc;
        uv_thread_join(&idx->thread);
        goto fail_sem;
    }
    idx->path = NULL;
    idx->errbuf = NULL;
    idx->errbuf_len = 0;
    *out = idx;
    return 0;
fail_sem:
    uv_sem_destroy(&idx->opened);
fail_cond:
    uv_cond_destroy(&idx->cond);
fail_mu:
    uv_mutex_destroy(&idx->mu);
fail_free:
    if (errbuf && errbuf_len && !errbuf[0])
        snprintf(errbuf, errbuf_len, "index: %s: %s", path, st_strerror(rc));
    free(idx);
    return rc;
}

void idx_close(idx_t *idx)
{
    if (!idx)
        return;
    uv_mutex_lock(&idx->mu);
    idx->is_stopping = true;
    uv_cond_signal(&idx->cond);
    uv_mutex_unlock(&idx->mu);
    uv_thread_join(&idx->thread);
    ST_ASSERT(!idx->head);
    uv_sem_destroy(&idx->opened);
    uv_cond_destroy(&idx->cond);
    uv_mutex_destroy(&idx->mu);
    free(idx);
}

/* ---- Clients ---- */

static void op_free(idx__op_t *op)
{
    free(op->topic);
    free(op->after);
    free(op->key);
    free(op->chunks);
    free(op->aborted);
    for (size_t i = 0; i < op->n_repl; i++) {
        free(op->repl[i].old_key);
        free(op->repl[i].key);
        free(op->repl[i].chunks);
        free(op->repl[i].aborted);
    }
    free(op->repl);
    free(op->loc_topic);
    free(op->loc_key);
    for (size_t i = 0; i < op->n_segs * 2; i++)
        free(op->seg_strs[i]);
    free(op->seg_strs);
    free(op->segs);
    for (size_t i = 0; i < op->n_keys; i++)
        free(op->keys[i]);
    free(op->keys);
    free(op);
}

static void client_closed(uv_handle_t *h)
{
    idx_client_t *c = h->data;
    idx_closed_cb cb = c->closed_cb;
    void *arg = c->closed_arg;
    uv_mutex_destroy(&c->mu);
    free(c);
    if (cb)
        cb(arg);
}

static void maybe_finish_close(idx_client_t *c)
{
    if (c->is_closing && c->n_pending == 0 && !uv_is_closing((uv_handle_t *)&c->async))
        uv_close((uv_handle_t *)&c->async, client_closed);
}

static void run_cb(idx__op_t *op)
{
    switch (op->kind) {
    case IDX__OP_ADD:
    case IDX__OP_REPLACE:
        op->cb.done(op->arg, op->status);
        break;
    case IDX__OP_LOOKUP_OFFSET:
    case IDX__OP_LOOKUP_TIME:
        op->cb.loc(op->arg, op->status, op->status == 0 ? &op->loc : NULL);
        break;
    case IDX__OP_LIST_SEGMENTS: {
        int64_t next = op->status == 0 && op->has_more ? op->out_i64 : -1;
        op->cb.segs(op->arg, op->status, op->status == 0 ? op->segs : NULL,
                    op->status == 0 ? op->n_segs : 0, next);
        break;
    }
    case IDX__OP_HIGH_OFFSET:
    case IDX__OP_LOW_OFFSET:
    case IDX__OP_CLEAN_END:
        op->cb.offset(op->arg, op->status, op->status == 0 ? op->out_i64 : -1);
        break;
    case IDX__OP_DELETE_BELOW:
    case IDX__OP_DROP:
    case IDX__OP_LIST_KEYS: {
        const char *next =
            op->status == 0 && op->has_more && op->n_keys ? op->keys[op->n_keys - 1] : NULL;
        op->cb.keys(op->arg, op->status, (const char *const *)op->keys, op->n_keys, next);
        break;
    }
    case IDX__OP_LIST_ABORTED:
        op->cb.aborted(op->arg, op->status, op->status == 0 ? op->aborted : NULL,
                       op->status == 0 ? op->n_aborted : 0);
        break;
    }
}

static void client_wakeup(uv_async_t *h)
{
    idx_client_t *c = h->data;
    uv_mutex_lock(&c->mu);
    idx__op_t *op = c->done_head;
    c->done_head = c->done_tail = NULL;
    uv_mutex_unlock(&c->mu);
    while (op) {
        idx__op_t *next = op->next;
        ST_ASSERT(c->n_pending > 0);
        c->n_pending--;
        run_cb(op);
        op_free(op);
        op = next;
    }
    maybe_finish_close(c);
}

int idx_client_new(idx_t *idx, uv_loop_t *loop, idx_client_t **out)
{
    idx_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return ST_E_NOMEM;
    c->idx = idx;
    c->loop = loop;
    int rc = uv_mutex_init(&c->mu);
    if (rc != 0) {
        free(c);
        return rc;
    }
    if ((rc = uv_async_init(loop, &c->async, client_wakeup)) != 0) {
        uv_mutex_destroy(&c->mu);
        free(c);
        return rc;
    }
    c->async.data = c;
    *out = c;
    return 0;
}

void idx_client_close(idx_client_t *c, idx_closed_cb cb, void *arg)
{
    ST_ASSERT(!c->is_closing);
    c->is_closing = true;
    c->closed_cb = cb;
    c->closed_arg = arg;
    maybe_finish_close(c);
}

/* ---- Submission ---- */

static idx__op_t *op_new(idx_client_t *c, idx__op_kind_t kind, const char *topic, void *arg)
{
    if (topic && (!topic[0] || strlen(topic) > IDX_MAX_TOPIC_LEN))
        return NULL;
    idx__op_t *op = calloc(1, sizeof *op);
    if (!op)
        return NULL;
    op->kind = kind;
    op->client = c;
    op->arg = arg;
    if (topic && !(op->topic = strdup(topic))) {
        free(op);
        return NULL;
    }
    return op;
}

static int submit(idx_client_t *c, idx__op_t *op)
{
    if (c->is_closing) {
        op_free(op);
        return ST_E_CLOSED;
    }
    idx_t *idx = c->idx;
    c->n_pending++;
    uv_mutex_lock(&idx->mu);
    ST_ASSERT(!idx->is_stopping);
    if (idx->tail)
        idx->tail->next = op;
    else
        idx->head = op;
    idx->tail = op;
    uv_cond_signal(&idx->cond);
    uv_mutex_unlock(&idx->mu);
    return 0;
}

static bool segment_valid(const idx_segment_t *s, const idx_chunk_t *ch, size_t n)
{
    if (s->n_aborted > 0 && !s->aborted)
        return false;
    for (size_t i = 0; i < s->n_aborted; i++)
        if (s->aborted[i].pid < 0 || s->aborted[i].first_offset < 0 ||
            s->aborted[i].last_offset < s->aborted[i].first_offset ||
            s->aborted[i].last_offset < s->base_offset ||
            s->aborted[i].last_offset > s->last_offset ||
            (i > 0 && s->aborted[i].last_offset <= s->aborted[i - 1].last_offset))
            return false;
    if (!s->topic || !s->topic[0] || strlen(s->topic) > IDX_MAX_TOPIC_LEN || s->partition < 0 ||
        !s->object_key || !s->object_key[0] || strlen(s->object_key) > IDX_MAX_KEY_LEN ||
        s->base_offset < 0 || s->last_offset < s->base_offset || s->size <= 0 || n == 0 ||
        n > IDX_MAX_CHUNKS || !ch)
        return false;
    if (ch[0].first_offset != s->base_offset || ch[n - 1].last_offset != s->last_offset)
        return false;
    for (size_t i = 0; i < n; i++) {
        const idx_chunk_t *k = &ch[i];
        if (k->last_offset < k->first_offset || k->obj_pos < 0 || k->obj_len <= 0 ||
            k->raw_len < 0 || k->obj_pos > s->size - k->obj_len)
            return false;
        if (i > 0 && (k->first_offset <= ch[i - 1].last_offset ||
                      k->obj_pos < ch[i - 1].obj_pos + ch[i - 1].obj_len))
            return false;
    }
    return true;
}

int idx_segment_add(idx_client_t *c,
                    const idx_segment_t *seg,
                    const idx_chunk_t *chunks,
                    size_t n_chunks,
                    idx_done_cb cb,
                    void *arg)
{
    if (!seg || !cb || !segment_valid(seg, chunks, n_chunks))
        return ST_E_INVAL;
    idx__op_t *op = op_new(c, IDX__OP_ADD, seg->topic, arg);
    if (!op)
        return ST_E_NOMEM;
    op->cb.done = cb;
    op->seg = *seg;
    op->key = strdup(seg->object_key);
    op->chunks = malloc(n_chunks * sizeof *chunks);
    if (!op->key || !op->chunks) {
        op_free(op);
        return ST_E_NOMEM;
    }
    memcpy(op->chunks, chunks, n_chunks * sizeof *chunks);
    op->n_chunks = n_chunks;
    op->seg.aborted = NULL;
    op->seg.n_aborted = 0;
    if (seg->n_aborted > 0) {
        if (!(op->aborted = malloc(seg->n_aborted * sizeof(*op->aborted)))) {
            op_free(op);
            return ST_E_NOMEM;
        }
        memcpy(op->aborted, seg->aborted, seg->n_aborted * sizeof(*op->aborted));
        op->n_aborted = seg->n_aborted;
    }
    op->seg.topic = op->topic;
    op->seg.object_key = op->key;
    op->partition = seg->partition;
    return submit(c, op);
}

static int submit_simple(idx_client_t *c,
                         idx__op_kind_t kind,
                         const char *topic,
                         int32_t partition,
                         int64_t v,
                         void *arg,
                         idx__op_t **out)
{
    if (!topic || partition < (kind == IDX__OP_DROP ? -1 : 0))
        return ST_E_INVAL;
    idx__op_t *op = op_new(c, kind, topic, arg);
    if (!op)
        return topic[0] && strlen(topic) <= IDX_MAX_TOPIC_LEN ? ST_E_NOMEM : ST_E_INVAL;
    op->partition = partition;
    op->arg_i64 = v;
    *out = op;
    return 0;
}

int idx_lookup_offset(
    idx_client_t *c, const char *topic, int32_t partition, int64_t offset, idx_loc_cb cb, void *arg)
{
    idx__op_t *op;
    int rc = cb ? submit_simple(c, IDX__OP_LOOKUP_OFFSET, topic, partition, offset, arg, &op)
                : ST_E_INVAL;
    if (rc != 0)
        return rc;
    op->cb.loc = cb;
    return submit(c, op);
}

int idx_lookup_time(
    idx_client_t *c, const char *topic, int32_t partition, int64_t ts, idx_loc_cb cb, void *arg)
{
    idx__op_t *op;
    int rc =
        cb ? submit_simple(c, IDX__OP_LOOKUP_TIME, topic, partition, ts, arg, &op) : ST_E_INVAL;
    if (rc != 0)
        return rc;
    op->cb.loc = cb;
    return submit(c, op);
}

int idx_list_segments(idx_client_t *c,
                      const char *topic,
                      int32_t partition,
                      int64_t from_offset,
                      size_t limit,
                      idx_segs_cb cb,
                      void *arg)
{
    if (!cb || limit == 0 || limit > IDX_MAX_PAGE)
        return ST_E_INVAL;
    idx__op_t *op;
    int rc = submit_simple(c, IDX__OP_LIST_SEGMENTS, topic, partition, from_offset, arg, &op);
    if (rc != 0)
        return rc;
    op->cb.segs = cb;
    op->limit = limit;
    return submit(c, op);
}

int idx_high_offset(
    idx_client_t *c, const char *topic, int32_t partition, idx_offset_cb cb, void *arg)
{
    idx__op_t *op;
    int rc = cb ? submit_simple(c, IDX__OP_HIGH_OFFSET, topic, partition, 0, arg, &op) : ST_E_INVAL;
    if (rc != 0)
        return rc;
    op->cb.offset = cb;
    return submit(c, op);
}

int idx_low_offset(
    idx_client_t *c, const char *topic, int32_t partition, idx_offset_cb cb, void *arg)
{
    idx__op_t *op;
    int rc = cb ? submit_simple(c, IDX__OP_LOW_OFFSET, topic, partition, 0, arg, &op) : ST_E_INVAL;
    if (rc != 0)
        return rc;
    op->cb.offset = cb;
    return submit(c, op);
}

int idx_delete_below(idx_client_t *c,
                     const char *topic,
                     int32_t partition,
                     int64_t offset,
                     idx_keys_cb cb,
                     void *arg)
{
    idx__op_t *op;
    int rc = cb ? submit_simple(c, IDX__OP_DELETE_BELOW, topic, partition, offset, arg, &op)
                : ST_E_INVAL;
    if (rc != 0)
        return rc;
    op->cb.keys = cb;
    return submit(c, op);
}

int idx_drop(idx_client_t *c, const char *topic, int32_t partition, idx_keys_cb cb, void *arg)
{
    idx__op_t *op;
    int rc = cb ? submit_simple(c, IDX__OP_DROP, topic, partition, 0, arg, &op) : ST_E_INVAL;
    if (rc != 0)
        return rc;
    op->cb.keys = cb;
    return submit(c, op);
}

int idx_list_keys(idx_client_t *c, const char *after, size_t limit, idx_keys_cb cb, void *arg)
{
    if (!cb || limit == 0 || limit > IDX_MAX_PAGE || (after && strlen(after) > IDX_MAX_KEY_LEN))
        return ST_E_INVAL;
    idx__op_t *op = op_new(c, IDX__OP_LIST_KEYS, NULL, arg);
    if (!op || (after && !(op->after = strdup(after)))) {
        free(op);
        return ST_E_NOMEM;
    }
    op->cb.keys = cb;
    op->limit = limit;
    return submit(c, op);
}

int idx_list_aborted(
    idx_client_t *c, const char *topic, int32_t partition, idx_aborted_cb cb, void *arg)
{
    idx__op_t *op;
    int rc =
        cb ? submit_simple(c, IDX__OP_LIST_ABORTED, topic, partition, 0, arg, &op) : ST_E_INVAL;
    if (rc != 0)
        return rc;
    op->cb.aborted = cb;
    return submit(c, op);
}

/* Copy what idx_segment_add's caller lends (key, chunks, aborted) into r. */
static int repl_copy(idx__repl_t *r, const idx_replace_t *in, const char *topic)
{
    const idx_segment_t *g = &in->seg;
    r->seg = *g;
    r->seg.aborted = NULL;
    r->seg.n_aborted = 0;
    r->old_key = strdup(in->old_key);
    r->key = strdup(g->object_key);
    r->chunks = malloc(in->n_chunks * sizeof(*r->chunks));
    r->aborted = g->n_aborted ? malloc(g->n_aborted * sizeof(*r->aborted)) : NULL;
    if (!r->old_key || !r->key || !r->chunks || (g->n_aborted && !r->aborted))
        return ST_E_NOMEM;
    memcpy(r->chunks, in->chunks, in->n_chunks * sizeof(*r->chunks));
    r->n_chunks = in->n_chunks;
    if (g->n_aborted)
        memcpy(r->aborted, g->aborted, g->n_aborted * sizeof(*r->aborted));
    r->n_aborted = g->n_aborted;
    r->seg.topic = topic;
    r->seg.object_key = r->key;
    return 0;
}

int idx_segments_replace(idx_client_t *c,
                         const char *topic,
                         int32_t partition,
                         const idx_replace_t *v,
                         size_t n,
                         int64_t clean_end,
                         idx_done_cb cb,
                         void *arg)
{
    if (!cb || !topic || partition < 0 || (n > 0 && !v) || clean_end < 0)
        return ST_E_INVAL;
    for (size_t i = 0; i < n; i++) {
        const idx_segment_t *g = &v[i].seg;
        if (!v[i].old_key || !v[i].old_key[0] || strlen(v[i].old_key) > IDX_MAX_KEY_LEN ||
            !g->topic || strcmp(g->topic, topic) != 0 || g->partition != partition ||
            !segment_valid(g, v[i].chunks, v[i].n_chunks) ||
            strcmp(v[i].old_key, g->object_key) == 0 ||
            (i > 0 && g->base_offset <= v[i - 1].seg.last_offset))
            return ST_E_INVAL;
    }
    idx__op_t *op = op_new(c, IDX__OP_REPLACE, topic, arg);
    if (!op)
        return topic[0] && strlen(topic) <= IDX_MAX_TOPIC_LEN ? ST_E_NOMEM : ST_E_INVAL;
    op->cb.done = cb;
    op->partition = partition;
    op->arg_i64 = clean_end;
    if (n > 0 && !(op->repl = calloc(n, sizeof(*op->repl)))) {
        op_free(op);
        return ST_E_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        op->n_repl++; /* counted first so op_free frees a partial copy */
        if (repl_copy(&op->repl[i], &v[i], op->topic) != 0) {
            op_free(op);
            return ST_E_NOMEM;
        }
    }
    return submit(c, op);
}

int idx_clean_end(
    idx_client_t *c, const char *topic, int32_t partition, idx_offset_cb cb, void *arg)
{
    idx__op_t *op;
    int rc = cb ? submit_simple(c, IDX__OP_CLEAN_END, topic, partition, 0, arg, &op) : ST_E_INVAL;
    if (rc != 0)
        return rc;
    op->cb.offset = cb;
    return submit(c, op);
}
