/* kh_group.c - consumer group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
 * LeaveGroup, ListGroups, DescribeGroups, DeleteGroups (offsets: kh_offsets.c); and each
 * shard's group coordinator (kafka/grp.h) with its offset writer.
 * Data path: the connection's shard decodes and validates -> one op per group is posted to
 * the group's owning shard (rt_shard_for(group_id, 0, n)) -> the op runs grp_* there;
 * JoinGroup/SyncGroup may wait for the rest of the group -> OffsetCommit/DeleteGroups/
 * OffsetDelete/expiry/topic deletion go through the shard's offset writer (one SQLite
 * transaction in flight per shard, queued ops batched into the next one; core/goffs) and
 * change the in-memory offsets only when that transaction is durable, in submission order ->
 * the op is posted back; the last one back encodes the response.
 * Invariants: 1. a coordinator is touched only on its shard's loop;
 *             2. an op running on another shard allocates only from its own arena (op->arena),
 *                never from the request's, so ops of one request can run in parallel;
 *             3. an OffsetCommit is acknowledged only after its rows are committed to SQLite;
 *             4. memory follows disk: writer ops apply to the coordinator in the order they
 *                were written. The one exception is KIP-848 membership (on_cons_state):
 *                written behind, in the same queue, so an OffsetCommit acknowledged after a
 *                membership change means that change is durable too. */
#include "core/meta.h"
#include "core/st_log.h"
#include "kafka/kh_group_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>


/* ---- Per-shard coordinator and offset writer ---- */

static _Thread_local gshard_t *t_gs;

gshard_t *kh_group__shard(void)
{
    return t_gs;
}

static int64_t clock_mono(void *arg)
{
    gshard_t *gs = arg;
    return (int64_t)uv_now(rt_shard_loop(gs->ks->sh));
}

static int64_t clock_wall(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kh_group__rows_free(goffs_row_t *rows, int n)
{
    for (int i = 0; i < n; i++) {
        free(rows[i].group);
        free(rows[i].topic);
        free(rows[i].metadata);
        free(rows[i].state);
    }
    free(rows);
}

static void gshard_maybe_free(gshard_t *gs)
{
    if (!gs->closing || gs->inflight || gs->queue || !gs->timer_closed)
        return;
    grp_coord_free(gs->coord);
    if (t_gs == gs)
        t_gs = NULL;
    free(gs);
}

static void writer_flush(gshard_t *gs);

static void on_written(void *arg, int status)
{
    gshard_t *gs = arg;
    wop_t *w = gs->inflight;
    gs->inflight = NULL;
    free(gs->batch);
    gs->batch = NULL;
    while (w) {
        wop_t *next = w->next;
        w->done(w, status);
        kh_group__rows_free(w->rows, w->n_rows);
        free(w);
        w = next;
    }
    writer_flush(gs);
    gshard_maybe_free(gs);
}

static void writer_flush(gshard_t *gs)
{
    if (gs->inflight || !gs->queue)
        return;
    int n = 0;
    for (wop_t *w = gs->queue; w; w = w->next)
        n += w->n_rows;
    gs->batch = calloc((size_t)(n ? n : 1), sizeof(*gs->batch));
    if (!gs->batch) { /* fail the waiting ops rather than lose their order */
        gs->inflight = gs->queue;
        gs->queue = gs->tail = NULL;
        on_written(gs, ST_E_NOMEM);
        return;
    }
    int k = 0;
    for (wop_t *w = gs->queue; w; w = w->next)
        for (int i = 0; i < w->n_rows; i++)
            gs->batch[k++] = w->rows[i];
    gs->inflight = gs->queue;
    gs->queue = gs->tail = NULL;
    goffs_apply(gs->ks->ctx->goffs, rt_shard_loop(gs->ks->sh), gs->batch, k, on_written, gs);
}

/* Queue w (owned) for the next transaction. */
void kh_group__write(gshard_t *gs, wop_t *w)
{
    w->next = NULL;
    if (gs->tail)
        gs->tail->next = w;
    else
        gs->queue = w;
    gs->tail = w;
    writer_flush(gs);
}

wop_t *kh_group__wop_new(int n_rows, wop_done_fn done, void *arg)
{
    wop_t *w = calloc(1, sizeof(*w));
    if (!w || !(w->rows = calloc((size_t)(n_rows ? n_rows : 1), sizeof(*w->rows)))) {
        free(w);
        return NULL;
    }
    w->done = done;
    w->arg = arg;
    return w;
}

static void on_tick(uv_timer_t *t);

/* Arm the timer for the coordinator's next deadline. */
static void gshard_rearm(gshard_t *gs)
{
    if (gs->closing)
        return;
    int64_t d = grp_coord_next_deadline(gs->coord);
    if (d < 0)
        return;
    int64_t now = (int64_t)uv_now(rt_shard_loop(gs->ks->sh));
    uv_timer_start(&gs->timer, on_tick, (uint64_t)(d > now ? d - now : 0), 0);
}

static void on_tick(uv_timer_t *t)
{
    gshard_t *gs = t->data;
    grp_coord_tick(gs->coord);
    gshard_rearm(gs);
}

/* ---- Expiry and topic deletion (writer ops without a request) ---- */

static void expired_done(wop_t *w, int status)
{
    gshard_t *gs = w->arg;
    if (status != 0)
        ST_WARN("grp", "cannot delete expired offsets of group=%s: %s", w->rows[0].group,
                st_strerror(status));
    grp_delete_end(gs->coord, w->rows[0].group);
}

static void on_expire(void *arg, const char *group_id)
{
    gshard_t *gs = arg;
    wop_t *w = kh_group__wop_new(1, expired_done, gs);
    if (!w || !(w->rows[0].group = strdup(group_id))) {
        if (w)
            kh_group__rows_free(w->rows, 1);
        free(w);
        grp_delete_end(gs->coord, group_id);
        return;
    }
    w->n_rows = 1;
    w->rows[0].kind = GOFFS_DEL;
    w->rows[0].partition = -1;
    kh_group__write(gs, w);
}

/* ---- KIP-848 membership, written behind (kafka/grp_cons.c says why that is safe) ---- */

static void cons_state_done(wop_t *w, int status)
{
    if (status != 0)
        ST_WARN("grp", "cannot save the state of consumer group=%s: %s", w->rows[0].group,
                st_strerror(status));
}

static void on_cons_state(void *arg, const char *group_id, const uint8_t *state, size_t len)
{
    gshard_t *gs = arg;
    wop_t *w = kh_group__wop_new(1, cons_state_done, gs);
    if (!w || !(w->rows[0].group = strdup(group_id)) ||
        (len && !(w->rows[0].state = malloc(len)))) {
        if (w)
            kh_group__rows_free(w->rows, 1);
        free(w);
        ST_WARN("grp", "out of memory saving the state of consumer group=%s", group_id);
        return;
    }
    w->n_rows = 1;
    w->rows[0].kind = len ? GOFFS_GROUP_PUT : GOFFS_GROUP_DEL;
    if (len)
        memcpy(w->rows[0].state, state, len);
    w->rows[0].state_len = (int32_t)len;
    kh_group__write(gs, w);
}

static void topic_deleted_done(wop_t *w, int status)
{
    gshard_t *gs = w->arg;
    if (status != 0)
        ST_WARN("grp", "cannot delete offsets of deleted topic=%s: %s", w->rows[0].topic,
                st_strerror(status));
    grp_offsets_delete_topic(gs->coord, w->rows[0].topic);
}

void kh_group_topic_deleted(kh_shard_t *ks, const char *topic)
{
    (void)ks;
    gshard_t *gs = t_gs;
    if (!gs || gs->closing)
        return;
    wop_t *w = kh_group__wop_new(1, topic_deleted_done, gs);
    if (!w || !(w->rows[0].topic = strdup(topic))) {
        if (w)
            kh_group__rows_free(w->rows, 1);
        free(w);
        grp_offsets_delete_topic(gs->coord, topic);
        return;
    }
    w->n_rows = 1;
    w->rows[0].kind = GOFFS_DEL;
    w->rows[0].partition = -1;
    kh_group__write(gs, w);
}

/* ---- Shard start / stop ---- */

void kh_group_shard_start(kh_shard_t *ks)
{
    const kh_ctx_t *ctx = ks->ctx;
    gshard_t *gs = calloc(1, sizeof(*gs));
    if (!gs) {
        ST_ERROR("grp", "out of memory starting the group coordinator");
        return;
    }
    gs->ks = ks;
    grp_config_t cfg = {
        .min_session_timeout_ms = ctx->group_min_session_ms,
        .max_session_timeout_ms = ctx->group_max_session_ms,
        .initial_rebalance_delay_ms = ctx->group_initial_delay_ms,
        .offsets_retention_ms = ctx->offsets_retention_ms,
        .now_ms = clock_mono,
        .wall_ms = clock_wall,
        .clock_arg = gs,
        .on_expire = on_expire,
        .expire_arg = gs,
        .cons_session_timeout_ms = ctx->group_cons_session_ms,
        .cons_heartbeat_interval_ms = ctx->group_cons_hb_ms,
        .cons_assignors = {ctx->group_cons_assignors[0], ctx->group_cons_assignors[1]},
        .n_cons_assignors = ctx->n_group_cons_assignors,
        .on_cons_state = ctx->goffs ? on_cons_state : NULL,
        .cons_state_arg = gs,
    };
    gs->coord = grp_coord_new(&cfg);
    if (!gs->coord) {
        free(gs);
        ST_ERROR("grp", "out of memory starting the group coordinator");
        return;
    }
    int n_rows = 0, mine = 0, me = rt_shard_id(ks->sh), n = rt_shard_count(ctx->rt);
    const goffs_row_t *rows = ctx->goffs ? goffs_loaded(ctx->goffs, &n_rows) : NULL;
    for (int i = 0; i < n_rows; i++) {
        const goffs_row_t *r = &rows[i];
        if (rt_shard_for(r->group, 0, n) != me)
            continue;
        if (grp_offset_put(gs->coord, r->group, 0, r->topic, r->partition, r->offset,
                           r->leader_epoch, r->metadata, r->commit_ms) != 0)
            ST_ERROR("grp", "out of memory loading offsets of group=%s", r->group);
        mine++;
    }
    if (mine)
        ST_INFO("grp", "shard=%d loaded %d committed offsets", me, mine);
    rows = ctx->goffs ? goffs_loaded_groups(ctx->goffs, &n_rows) : NULL;
    for (int i = 0; rows && i < n_rows; i++) {
        const goffs_row_t *r = &rows[i];
        if (rt_shard_for(r->group, 0, n) != me)
            continue;
        int rc = grp_cons_restore(gs->coord, r->group, r->state, (size_t)r->state_len);
        if (rc != 0)
            ST_WARN("grp", "consumer group=%s starts empty: its saved state: %s", r->group,
                    st_strerror(rc));
    }
    uv_timer_init(rt_shard_loop(ks->sh), &gs->timer);
    gs->timer.data = gs;
    t_gs = gs;
    gshard_rearm(gs);
}

static void on_timer_closed(uv_handle_t *h)
{
    gshard_t *gs = h->data;
    gs->timer_closed = true;
    gshard_maybe_free(gs);
}

void kh_group_shard_close(kh_shard_t *ks)
{
    (void)ks;
    gshard_t *gs = t_gs;
    if (!gs || gs->closing)
        return;
    gs->closing = true;
    uv_close((uv_handle_t *)&gs->timer, on_timer_closed);
}

/* ---- Ops: one per group, run on the owning shard ---- */

static void gstate_free(kh_req_t *req)
{
    gstate_t *st = req->state;
    for (gop_t *op = st ? st->ops : NULL; op; op = op->next_in_req)
        kp_arena_fini(&op->arena);
}

/* Start a request: the hold (taken even when out of memory, so that every
 * failure path of a handler is kh_fail_held) and the response struct. */
gstate_t *kh_group__start(kh_req_t *req, size_t resp_size)
{
    kh_req_op_out(req);
    gstate_t *st = kp_arena_alloc(&req->arena, sizeof(*st));
    if (!st || !(st->resp = kp_arena_alloc(&req->arena, resp_size)))
        return NULL;
    req->state = st;
    req->state_free = gstate_free;
    return st;
}

static void gop_back(rt_shard_t *sh, void *arg)
{
    gop_t *op = arg;
    kh_req_t *req = op->req;
    (void)sh;
    if (!kh_req_op_back(req))
        return;
    gstate_t *st = req->state;
    kh_respond(req, st->resp);
}

/* Drop the hold taken by kh_group__start (the response goes out when every op is back). */
void kh_group__release(kh_req_t *req)
{
    gop_t done = {.req = req};
    gop_back(req->ks->sh, &done);
}

void kh_group__done(gop_t *op, gshard_t *gs)
{
    gshard_rearm(gs);
    kh_post(gs->ks, &op->post, op->origin, gop_back, NULL, op);
}

static void gop_run(rt_shard_t *sh, void *arg)
{
    gop_t *op = arg;
    (void)sh;
    gshard_t *gs = t_gs;
    if (!gs || gs->closing) {
        op->run(op, NULL);
        kh_post(kh_shard_of(sh), &op->post, op->origin, gop_back, NULL, op);
        return;
    }
    op->run(op, gs);
    /* The op may have moved a deadline (a JoinGroup that waits starts the
     * rebalance delay) without answering yet: re-arm for the new one. */
    gshard_rearm(gs);
}

/* The group's shard closed for good before the op ran (shutdown): answer
 * COORDINATOR_NOT_AVAILABLE on the origin. */
static void gop_closed(rt_shard_t *sh, void *arg)
{
    gop_t *op = arg;
    op->run(op, NULL);
    gop_back(sh, op);
}

/* Post a new op for group (a request-arena string) to the group's shard. The op's run must
 * end with kh_group__done (or, when called with gs == NULL, only fill a
 * COORDINATOR_NOT_AVAILABLE answer). */
gop_t *
kh_group__send(kh_req_t *req, const char *group, int index, gop_fn run, void *resp, void *extra)
{
    gstate_t *st = req->state;
    gop_t *op = kp_arena_alloc(&req->arena, sizeof(*op));
    if (!op)
        return NULL;
    op->req = req;
    op->origin = rt_shard_id(req->ks->sh);
    op->group = (char *)group;
    op->index = index;
    op->run = run;
    op->resp = resp;
    op->extra = extra; /* set before posting: the op may run on the other shard at once */
    kp_arena_init(&op->arena, KH_GROUP_OP_ARENA);
    op->next_in_req = st->ops;
    st->ops = op;
    kh_req_op_out(req);
    kh_post(req->ks, &op->post, rt_shard_for(group, 0, rt_shard_count(req->ks->ctx->rt)), gop_run,
            gop_closed, op);
    return op;
}

char *kh_group__opt_cstr(kh_req_t *req, kp_str_t s)
{
    return s.len < 0 ? NULL : kh_cstr(req, s);
}

static char *arena_strdup(kp_arena_t *a, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *p = kp_arena_alloc(a, n + 1);
    if (p)
        memcpy(p, s, n + 1);
    return p;
}

kp_str_t kh_group__arena_str(kp_arena_t *a, const char *s)
{
    return kp_str_from_cstr(arena_strdup(a, s));
}

kp_bytes_t kh_group__arena_bytes(kp_arena_t *a, const uint8_t *p, int32_t len)
{
    if (!p || len <= 0)
        return (kp_bytes_t){(const uint8_t *)"", 0};
    uint8_t *d = kp_arena_alloc(a, (size_t)len);
    if (!d)
        return (kp_bytes_t){(const uint8_t *)"", 0};
    memcpy(d, p, (size_t)len);
    return (kp_bytes_t){d, len};
}

/* ---- FindCoordinator ---- */

void kh_find_coordinator(kh_req_t *req)
{
    kp_find_coordinator_request_t *q = req->msg;
    const kh_ctx_t *ctx = req->ks->ctx;
    int16_t v = req->hdr.request_api_version;
    kp_find_coordinator_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    if (!r)
        goto oom;
    kp_find_coordinator_response_init(r);
    kp_str_t host = kp_str_from_cstr(req->lis->adv_host);
    int16_t err = q->key_type == 0 || q->key_type == 1 ? KP_ERR_NONE : KP_ERR_INVALID_REQUEST;
    if (v < 4) {
        r->error_code = err;
        r->node_id = err ? -1 : ctx->node_id;
        r->host = err ? KP_STR_LIT("") : host;
        r->port = err ? -1 : req->lis->adv_port;
        if (err && v >= 1)
            r->error_message = KP_STR_LIT("unsupported coordinator key type");
    } else {
        int n = q->n_coordinator_keys > 0 ? q->n_coordinator_keys : 0;
        r->coordinators =
            kp_arena_calloc(&req->arena, (size_t)(n ? n : 1), sizeof(*r->coordinators));
        if (!r->coordinators)
            goto oom;
        r->n_coordinators = n;
        for (int i = 0; i < n; i++) {
            kp_find_coordinator_response_coordinator_t *co = &r->coordinators[i];
            kp_find_coordinator_response_coordinator_init(co);
            co->key = q->coordinator_keys[i];
            co->error_code = err;
            co->node_id = err ? -1 : ctx->node_id;
            co->host = err ? KP_STR_LIT("") : host;
            co->port = err ? -1 : req->lis->adv_port;
            if (err)
                co->error_message = KP_STR_LIT("unsupported coordinator key type");
        }
    }
    kh_respond(req, r);
    return;
oom:
    kh_fail_conn(req, "out of memory");
}

/* ---- JoinGroup ---- */

static void join_cb(void *arg, const grp_join_result_t *res)
{
    gop_t *op = arg;
    kp_join_group_response_t *r = op->resp;
    int16_t v = op->req->hdr.request_api_version;
    kp_arena_t *a = &op->arena;
    r->error_code = res->error_code;
    r->generation_id = res->generation_id;
    if (v >= 7)
        r->protocol_type = kh_group__arena_str(a, res->protocol_type);
    r->protocol_name = res->protocol_name ? kh_group__arena_str(a, res->protocol_name)
                                          : (v >= 7 ? KP_STR_NULL : KP_STR_LIT(""));
    r->leader = res->leader_id ? kh_group__arena_str(a, res->leader_id) : KP_STR_LIT("");
    r->member_id = res->member_id ? kh_group__arena_str(a, res->member_id) : KP_STR_LIT("");
    if (v >= 9)
        r->skip_assignment = res->skip_assignment;
    r->n_members = 0;
    if (res->n_members > 0) {
        r->members = kp_arena_calloc(a, (size_t)res->n_members, sizeof(*r->members));
        for (int i = 0; r->members && i < res->n_members; i++) {
            kp_join_group_response_member_t *m = &r->members[i];
            kp_join_group_response_member_init(m);
            m->member_id = kh_group__arena_str(a, res->members[i].member_id);
            if (v >= 5 && res->members[i].instance_id)
                m->group_instance_id = kh_group__arena_str(a, res->members[i].instance_id);
            m->metadata =
                kh_group__arena_bytes(a, res->members[i].metadata, res->members[i].metadata_len);
            r->n_members++;
        }
    }
    kh_group__done(op, t_gs);
}

/* The member's host as Kafka reports it: "/" and the peer's IP (no port); "" when out of
 * memory or unknown. Arena memory of req. */
const char *kh_group__client_host(kh_req_t *req)
{
    const char *peer = kh_req_peer(req);
    const char *colon = strrchr(peer, ':');
    size_t len = colon ? (size_t)(colon - peer) : strlen(peer);
    char buf[72];
    snprintf(buf, sizeof(buf), "/%.*s", (int)len, peer);
    const char *h = len ? kh_cstr(req, kp_str_from_cstr(buf)) : NULL;
    return h ? h : "";
}

static void join_run(gop_t *op, gshard_t *gs)
{
    kh_req_t *req = op->req;
    kp_join_group_request_t *q = req->msg;
    kp_join_group_response_t *r = op->resp;
    if (!gs) {
        r->error_code = KP_ERR_COORDINATOR_NOT_AVAILABLE;
        return;
    }
    /* a copy: once join_cb answered, the request (and jq in its arena) may be gone */
    grp_join_req_t jq = *(grp_join_req_t *)op->extra;
    meta_snap_t *snap = meta_snap_get(gs->ks->ctx->meta);
    jq.snap = snap;
    grp_join(gs->coord, &jq, join_cb, op);
    meta_snap_put(snap);
    (void)q;
}

void kh_join_group(kh_req_t *req)
{
    kp_join_group_request_t *q = req->msg;
    int16_t v = req->hdr.request_api_version;
    gstate_t *st = kh_group__start(req, sizeof(kp_join_group_response_t));
    if (!st)
        goto oom;
    kp_join_group_response_t *r = st->resp;
    kp_join_group_response_init(r);
    r->protocol_name = v >= 7 ? KP_STR_NULL : KP_STR_LIT("");
    r->leader = KP_STR_LIT("");
    r->member_id = q->member_id.len >= 0 ? q->member_id : KP_STR_LIT("");
    grp_join_req_t *jq = kp_arena_alloc(&req->arena, sizeof(*jq));
    int n = q->n_protocols > 0 ? q->n_protocols : 0;
    grp_protocol_t *ps = kp_arena_calloc(&req->arena, (size_t)(n ? n : 1), sizeof(*ps));
    if (!jq || !ps)
        goto oom;
    for (int i = 0; i < n; i++) {
        ps[i].name = kh_cstr(req, q->protocols[i].name);
        ps[i].metadata = q->protocols[i].metadata.ptr;
        ps[i].metadata_len = q->protocols[i].metadata.len;
        if (!ps[i].name)
            goto oom;
    }
    *jq = (grp_join_req_t){
        .group_id = kh_cstr(req, q->group_id),
        .member_id = kh_cstr(req, q->member_id),
        .instance_id = v >= 5 ? kh_group__opt_cstr(req, q->group_instance_id) : NULL,
        .client_id = kh_cstr(req, req->hdr.client_id),
        .client_host = kh_group__client_host(req),
        .protocol_type = kh_cstr(req, q->protocol_type),
        .session_timeout_ms = q->session_timeout_ms,
        .rebalance_timeout_ms = v >= 1 ? q->rebalance_timeout_ms : q->session_timeout_ms,
        .protocols = ps,
        .n_protocols = n,
        .require_known_member_id = v >= 4,
        .supports_skip_assignment = v >= 9,
    };
    if (!jq->group_id || !jq->member_id || !jq->client_id || !jq->protocol_type)
        goto oom;
    if (!jq->group_id[0]) {
        r->error_code = KP_ERR_INVALID_GROUP_ID;
    } else {
        if (!kh_group__send(req, jq->group_id, 0, join_run, r, jq))
            goto oom;
    }
    kh_group__release(req);
    return;
oom:
    kh_fail_held(req, "out of memory");
}

/* ---- SyncGroup ---- */

static void sync_cb(void *arg, const grp_sync_result_t *res)
{
    gop_t *op = arg;
    kp_sync_group_response_t *r = op->resp;
    int16_t v = op->req->hdr.request_api_version;
    r->error_code = res->error_code;
    if (v >= 5 && !res->error_code) {
        r->protocol_type = kh_group__arena_str(&op->arena, res->protocol_type);
        r->protocol_name = kh_group__arena_str(&op->arena, res->protocol_name);
    }
    r->assignment = kh_group__arena_bytes(&op->arena, res->assignment, res->assignment_len);
    kh_group__done(op, t_gs);
}

static void sync_run(gop_t *op, gshard_t *gs)
{
    kp_sync_group_response_t *r = op->resp;
    if (!gs) {
        r->error_code = KP_ERR_COORDINATOR_NOT_AVAILABLE;
        return;
    }
    /* a copy: once sync_cb answered, the request (and sq in its arena) may be gone */
    grp_sync_req_t sq = *(grp_sync_req_t *)op->extra;
    meta_snap_t *snap = meta_snap_get(gs->ks->ctx->meta);
    sq.snap = snap;
    grp_sync(gs->coord, &sq, sync_cb, op);
    meta_snap_put(snap);
}

void kh_sync_group(kh_req_t *req)
{
    kp_sync_group_request_t *q = req->msg;
    int16_t v = req->hdr.request_api_version;
    gstate_t *st = kh_group__start(req, sizeof(kp_sync_group_response_t));
    if (!st)
        goto oom;
    kp_sync_group_response_t *r = st->resp;
    kp_sync_group_response_init(r);
    r->assignment = (kp_bytes_t){(const uint8_t *)"", 0};
    grp_sync_req_t *sq = kp_arena_alloc(&req->arena, sizeof(*sq));
    int n = q->n_assignments > 0 ? q->n_assignments : 0;
    grp_assignment_t *as = kp_arena_calloc(&req->arena, (size_t)(n ? n : 1), sizeof(*as));
    if (!sq || !as)
        goto oom;
    for (int i = 0; i < n; i++) {
        as[i].member_id = kh_cstr(req, q->assignments[i].member_id);
        as[i].assignment = q->assignments[i].assignment.ptr;
        as[i].assignment_len = q->assignments[i].assignment.len;
        if (!as[i].member_id)
            goto oom;
    }
    *sq = (grp_sync_req_t){
        .group_id = kh_cstr(req, q->group_id),
        .generation_id = q->generation_id,
        .member_id = kh_cstr(req, q->member_id),
        .instance_id = v >= 3 ? kh_group__opt_cstr(req, q->group_instance_id) : NULL,
        .protocol_type = v >= 5 ? kh_group__opt_cstr(req, q->protocol_type) : NULL,
        .protocol_name = v >= 5 ? kh_group__opt_cstr(req, q->protocol_name) : NULL,
        .assignments = as,
        .n_assignments = n,
    };
    if (!sq->group_id || !sq->member_id)
        goto oom;
    if (!sq->group_id[0]) {
        r->error_code = KP_ERR_INVALID_GROUP_ID;
    } else {
        if (!kh_group__send(req, sq->group_id, 0, sync_run, r, sq))
            goto oom;
    }
    kh_group__release(req);
    return;
oom:
    kh_fail_held(req, "out of memory");
}

/* ---- Heartbeat ---- */

static void heartbeat_run(gop_t *op, gshard_t *gs)
{
    kp_heartbeat_request_t *q = op->req->msg;
    kp_heartbeat_response_t *r = op->resp;
    if (!gs) {
        r->error_code = KP_ERR_COORDINATOR_NOT_AVAILABLE;
        return;
    }
    r->error_code = grp_heartbeat(gs->coord, op->group, q->generation_id, ((char **)op->extra)[0],
                                  ((char **)op->extra)[1]);
    kh_group__done(op, gs);
}

void kh_heartbeat(kh_req_t *req)
{
    kp_heartbeat_request_t *q = req->msg;
    int16_t v = req->hdr.request_api_version;
    gstate_t *st = kh_group__start(req, sizeof(kp_heartbeat_response_t));
    char **ids = kp_arena_calloc(&req->arena, 2, sizeof(char *));
    char *group = kh_cstr(req, q->group_id);
    if (!st || !ids || !group || !(ids[0] = kh_cstr(req, q->member_id)))
        goto oom;
    ids[1] = v >= 3 ? kh_group__opt_cstr(req, q->group_instance_id) : NULL;
    kp_heartbeat_response_t *r = st->resp;
    kp_heartbeat_response_init(r);
    if (!group[0]) {
        r->error_code = KP_ERR_INVALID_GROUP_ID;
    } else {
        if (!kh_group__send(req, group, 0, heartbeat_run, r, ids))
            goto oom;
    }
    kh_group__release(req);
    return;
oom:
    kh_fail_held(req, "out of memory");
}

/* ---- LeaveGroup ---- */

typedef struct {
    char **member_ids;
    char **instance_ids;
    int n;
} leave_x_t;

static void leave_run(gop_t *op, gshard_t *gs)
{
    kp_leave_group_response_t *r = op->resp;
    leave_x_t *x = op->extra;
    int16_t v = op->req->hdr.request_api_version;
    for (int i = 0; i < x->n; i++) {
        int16_t err = gs ? grp_leave(gs->coord, op->group, x->member_ids[i], x->instance_ids[i])
                         : KP_ERR_COORDINATOR_NOT_AVAILABLE;
        if (v >= 3)
            r->members[i].error_code = err;
        else
            r->error_code = err;
    }
    if (gs)
        kh_group__done(op, gs);
}

void kh_leave_group(kh_req_t *req)
{
    kp_leave_group_request_t *q = req->msg;
    int16_t v = req->hdr.request_api_version;
    gstate_t *st = kh_group__start(req, sizeof(kp_leave_group_response_t));
    leave_x_t *x = kp_arena_alloc(&req->arena, sizeof(*x));
    char *group = kh_cstr(req, q->group_id);
    if (!st || !x || !group)
        goto oom;
    kp_leave_group_response_t *r = st->resp;
    kp_leave_group_response_init(r);
    x->n = v >= 3 ? (q->n_members > 0 ? q->n_members : 0) : 1;
    x->member_ids = kp_arena_calloc(&req->arena, (size_t)x->n + 1, sizeof(char *));
    x->instance_ids = kp_arena_calloc(&req->arena, (size_t)x->n + 1, sizeof(char *));
    if (!x->member_ids || !x->instance_ids)
        goto oom;
    if (v >= 3) {
        r->members = kp_arena_calloc(&req->arena, (size_t)x->n + 1, sizeof(*r->members));
        if (!r->members)
            goto oom;
        r->n_members = x->n;
        for (int i = 0; i < x->n; i++) {
            kp_leave_group_request_member_identity_t *mi = &q->members[i];
            kp_leave_group_response_member_response_init(&r->members[i]);
            r->members[i].member_id = mi->member_id;
            r->members[i].group_instance_id = mi->group_instance_id;
            x->member_ids[i] = kh_cstr(req, mi->member_id);
            x->instance_ids[i] = kh_group__opt_cstr(req, mi->group_instance_id);
            if (!x->member_ids[i])
                goto oom;
        }
    } else if (!(x->member_ids[0] = kh_cstr(req, q->member_id))) {
        goto oom;
    }
    if (!group[0]) {
        r->error_code = KP_ERR_INVALID_GROUP_ID;
    } else {
        if (!kh_group__send(req, group, 0, leave_run, r, x))
            goto oom;
    }
    kh_group__release(req);
    return;
oom:
    kh_fail_held(req, "out of memory");
}

/* ---- ListGroups ---- */

typedef struct {
    kp_list_groups_response_listed_group_t *groups; /* op arena */
    int n;
} list_x_t;

static bool list_match(const kp_list_groups_request_t *q, int16_t v, const grp_t *g)
{
    if (grp_state(g) == GRP_DEAD)
        return false;
    if (v >= 4 && q->n_states_filter > 0) {
        const char *name = grp_is_consumer(g) ? grp_cons_state(g) : grp_state_name(grp_state(g));
        bool hit = false;
        for (int i = 0; i < q->n_states_filter && !hit; i++)
            hit = (size_t)q->states_filter[i].len == strlen(name) &&
                  !strncasecmp(q->states_filter[i].ptr, name, strlen(name));
        if (!hit)
            return false;
    }
    if (v >= 5 && q->n_types_filter > 0) {
        bool hit = false;
        const char *type = grp_is_consumer(g) ? "consumer" : "classic";
        size_t tl = strlen(type);
        for (int i = 0; i < q->n_types_filter && !hit; i++)
            hit = (size_t)q->types_filter[i].len == tl &&
                  !strncasecmp(q->types_filter[i].ptr, type, tl);
        if (!hit)
            return false;
    }
    return true;
}

static void list_run(gop_t *op, gshard_t *gs)
{
    list_x_t *x = op->extra;
    kp_list_groups_request_t *q = op->req->msg;
    int16_t v = op->req->hdr.request_api_version;
    kp_list_groups_response_t *r = op->resp;
    if (!gs) {
        r->error_code = KP_ERR_COORDINATOR_NOT_AVAILABLE;
        return;
    }
    int n = 0;
    for (grp_t *g = grp_first(gs->coord); g; g = grp_next(gs->coord, g))
        n += list_match(q, v, g);
    x->groups = kp_arena_calloc(&op->arena, (size_t)(n ? n : 1), sizeof(*x->groups));
    for (grp_t *g = grp_first(gs->coord); x->groups && g; g = grp_next(gs->coord, g)) {
        if (!list_match(q, v, g))
            continue;
        kp_list_groups_response_listed_group_t *lg = &x->groups[x->n++];
        kp_list_groups_response_listed_group_init(lg);
        lg->group_id = kh_group__arena_str(&op->arena, grp_id(g));
        lg->protocol_type = kh_group__arena_str(&op->arena, grp_protocol_type(g));
        if (v >= 4)
            lg->group_state = kp_str_from_cstr(grp_is_consumer(g) ? grp_cons_state(g)
                                                                  : grp_state_name(grp_state(g)));
        if (v >= 5)
            lg->group_type = grp_is_consumer(g) ? KP_STR_LIT("consumer") : KP_STR_LIT("classic");
    }
}

static void list_back(rt_shard_t *sh, void *arg)
{
    gop_t *op = arg;
    kh_req_t *req = op->req;
    (void)sh;
    if (!kh_req_op_back(req))
        return;
    gstate_t *st = req->state;
    kp_list_groups_response_t *r = st->resp;
    int n = 0;
    for (gop_t *o = st->ops; o; o = o->next_in_req)
        n += ((list_x_t *)o->extra)->n;
    r->groups = kp_arena_calloc(&req->arena, (size_t)(n ? n : 1), sizeof(*r->groups));
    if (!r->groups) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    for (gop_t *o = st->ops; o; o = o->next_in_req) {
        list_x_t *x = o->extra;
        for (int i = 0; i < x->n; i++)
            r->groups[r->n_groups++] = x->groups[i];
    }
    kh_respond(req, r);
}

static void list_on_shard(rt_shard_t *sh, void *arg)
{
    gop_t *op = arg;
    gshard_t *gs = t_gs;
    list_run(op, gs && !gs->closing ? gs : NULL);
    kh_post(kh_shard_of(sh), &op->post, op->origin, list_back, NULL, op);
}

static void list_closed(rt_shard_t *sh, void *arg)
{
    gop_t *op = arg;
    list_run(op, NULL);
    list_back(sh, op);
}

void kh_list_groups(kh_req_t *req)
{
    gstate_t *st = kh_group__start(req, sizeof(kp_list_groups_response_t));
    if (!st)
        goto oom;
    kp_list_groups_response_t *r = st->resp;
    kp_list_groups_response_init(r);
    int n = rt_shard_count(req->ks->ctx->rt);
    for (int s = 0; s < n; s++) {
        gop_t *op = kp_arena_alloc(&req->arena, sizeof(*op));
        list_x_t *x = kp_arena_alloc(&req->arena, sizeof(*x));
        if (!op || !x)
            goto oom;
        op->req = req;
        op->origin = rt_shard_id(req->ks->sh);
        op->resp = r;
        op->extra = x;
        kp_arena_init(&op->arena, KH_GROUP_OP_ARENA);
        op->next_in_req = st->ops;
        st->ops = op;
        kh_req_op_out(req);
        kh_post(req->ks, &op->post, s, list_on_shard, list_closed, op);
    }
    gop_t hold = {.req = req}; /* drop the hold: list_back answers when the last shard is back */
    list_back(req->ks->sh, &hold);
    return;
oom:
    kh_fail_held(req, "out of memory");
}

/* ---- DescribeGroups ---- */

static void describe_run(gop_t *op, gshard_t *gs)
{
    kp_describe_groups_response_t *r = op->resp;
    kp_describe_groups_response_described_group_t *d = &r->groups[op->index];
    kp_arena_t *a = &op->arena;
    grp_t *g = gs ? grp_find(gs->coord, op->group) : NULL;
    d->error_code = gs ? KP_ERR_NONE : KP_ERR_COORDINATOR_NOT_AVAILABLE;
    /* a consumer-protocol group is not a classic group: Kafka's answer below DescribeGroups v6
     * (which would carry GROUP_ID_NOT_FOUND) is Dead with no error */
    if (!g || grp_state(g) == GRP_DEAD || grp_is_consumer(g)) {
        d->group_state = KP_STR_LIT("Dead");
        if (gs)
            kh_group__done(op, gs);
        return;
    }
    bool stable = grp_state(g) == GRP_STABLE;
    d->group_state = kp_str_from_cstr(grp_state_name(grp_state(g)));
    d->protocol_type = kh_group__arena_str(a, grp_protocol_type(g));
    d->protocol_data = stable && grp_protocol_name(g) ? kh_group__arena_str(a, grp_protocol_name(g))
                                                      : KP_STR_LIT("");
    int n = grp_n_members(g);
    d->members = kp_arena_calloc(a, (size_t)(n ? n : 1), sizeof(*d->members));
    if (!d->members) {
        d->error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
        kh_group__done(op, gs);
        return;
    }
    int16_t v = op->req->hdr.request_api_version;
    for (int i = 0; i < n; i++) {
        grp_member_desc_t md;
        grp_member_desc(g, i, &md);
        kp_describe_groups_response_described_group_member_t *m = &d->members[i];
        kp_describe_groups_response_described_group_member_init(m);
        m->member_id = kh_group__arena_str(a, md.member_id);
        if (v >= 4 && md.instance_id)
            m->group_instance_id = kh_group__arena_str(a, md.instance_id);
        m->client_id = kh_group__arena_str(a, md.client_id);
        m->client_host = kh_group__arena_str(a, md.client_host);
        m->member_metadata = stable ? kh_group__arena_bytes(a, md.metadata, md.metadata_len)
                                    : (kp_bytes_t){(const uint8_t *)"", 0};
        m->member_assignment = stable ? kh_group__arena_bytes(a, md.assignment, md.assignment_len)
                                      : (kp_bytes_t){(const uint8_t *)"", 0};
    }
    d->n_members = n;
    kh_group__done(op, gs);
}

void kh_describe_groups(kh_req_t *req)
{
    kp_describe_groups_request_t *q = req->msg;
    gstate_t *st = kh_group__start(req, sizeof(kp_describe_groups_response_t));
    if (!st)
        goto oom;
    kp_describe_groups_response_t *r = st->resp;
    kp_describe_groups_response_init(r);
    int n = q->n_groups > 0 ? q->n_groups : 0;
    r->groups = kp_arena_calloc(&req->arena, (size_t)(n ? n : 1), sizeof(*r->groups));
    if (!r->groups)
        goto oom;
    r->n_groups = n;
    for (int i = 0; i < n; i++) {
        kp_describe_groups_response_described_group_t *d = &r->groups[i];
        kp_describe_groups_response_described_group_init(d);
        d->group_id = q->groups[i];
        d->group_state = KP_STR_LIT("Dead");
        d->protocol_type = KP_STR_LIT("");
        d->protocol_data = KP_STR_LIT("");
        char *group = kh_cstr(req, q->groups[i]);
        if (!group)
            goto oom;
        if (!group[0]) {
            d->error_code = KP_ERR_INVALID_GROUP_ID;
            continue;
        }
        if (!kh_group__send(req, group, i, describe_run, r, NULL))
            goto oom;
    }
    kh_group__release(req);
    return;
oom:
    kh_fail_held(req, "out of memory");
}

/* ---- DeleteGroups ---- */

static void delete_done(wop_t *w, int status)
{
    gop_t *op = w->arg;
    gshard_t *gs = t_gs;
    kp_delete_groups_response_t *r = op->resp;
    if (status != 0) {
        ST_WARN("grp", "cannot delete offsets of group=%s: %s", op->group, st_strerror(status));
        r->results[op->index].error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
    } else {
        ST_INFO("grp", "deleted group=%s", op->group);
    }
    grp_delete_end(gs->coord, op->group);
    kh_group__done(op, gs);
}

static void delete_run(gop_t *op, gshard_t *gs)
{
    kp_delete_groups_response_t *r = op->resp;
    kp_delete_groups_response_deletable_group_result_t *res = &r->results[op->index];
    if (!gs) {
        res->error_code = KP_ERR_COORDINATOR_NOT_AVAILABLE;
        return;
    }
    res->error_code = grp_delete_begin(gs->coord, op->group);
    wop_t *w = res->error_code ? NULL : kh_group__wop_new(1, delete_done, op);
    if (w && !(w->rows[0].group = strdup(op->group))) {
        kh_group__rows_free(w->rows, 1);
        free(w);
        w = NULL;
    }
    if (!w) {
        if (!res->error_code) {
            res->error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
            grp_delete_end(gs->coord, op->group);
        }
        kh_group__done(op, gs);
        return;
    }
    w->n_rows = 1;
    w->rows[0].kind = GOFFS_DEL;
    w->rows[0].partition = -1;
    kh_group__write(gs, w);
}

void kh_delete_groups(kh_req_t *req)
{
    kp_delete_groups_request_t *q = req->msg;
    gstate_t *st = kh_group__start(req, sizeof(kp_delete_groups_response_t));
    if (!st)
        goto oom;
    kp_delete_groups_response_t *r = st->resp;
    kp_delete_groups_response_init(r);
    int n = q->n_groups_names > 0 ? q->n_groups_names : 0;
    r->results = kp_arena_calloc(&req->arena, (size_t)(n ? n : 1), sizeof(*r->results));
    if (!r->results)
        goto oom;
    r->n_results = n;
    bool *dups = kh_str_dups(req, q->groups_names, n, sizeof(q->groups_names[0]));
    if (!dups)
        goto oom;
    for (int i = 0; i < n; i++) {
        kp_delete_groups_response_deletable_group_result_t *res = &r->results[i];
        kp_delete_groups_response_deletable_group_result_init(res);
        res->group_id = q->groups_names[i];
        char *group = kh_cstr(req, q->groups_names[i]);
        if (!group)
            goto oom;
        if (!group[0] || dups[i]) {
            res->error_code = !group[0] ? KP_ERR_INVALID_GROUP_ID : KP_ERR_GROUP_ID_NOT_FOUND;
            continue;
        }
        if (!kh_group__send(req, group, i, delete_run, r, NULL))
            goto oom;
    }
    kh_group__release(req);
    return;
oom:
    kh_fail_held(req, "out of memory");
}
