/* grp.c - the classic group protocol of one shard: membership, rebalances, generations,
 * session/rebalance timeouts, static members, and the in-memory committed offsets.
 * Data path: kh_group.c calls in on the group's owning shard; JoinGroup and SyncGroup
 * callbacks fire when the rebalance reaches the point their answer depends on.
 * Invariants: 1. a member has at most one waiting Join and one waiting Sync callback, and
 *                every callback is answered exactly once (at worst by grp_coord_free);
 *             2. generation_id only grows, by one per completed join phase;
 *             3. an instance id belongs to at most one member of a group;
 *             4. offsets are sorted by (topic, partition) and unique.
 * The state diagram is beside grp_state_t in grp.h. Division: helpers, rebalance core,
 * Join, Sync, Heartbeat/Leave, timers, offsets, lookup/deletion. */
#include "core/st_log.h"
#include "kafka/grp_int.h"
#include "kafka/kp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const char *const k_state_names[] = {"Empty", "PreparingRebalance", "CompletingRebalance",
                                            "Stable", "Dead"};

const char *grp_state_name(grp_state_t s)
{
    return (unsigned)s < 5 ? k_state_names[s] : "Unknown";
}

/* ---- Helpers ---- */

int64_t grp__now_ms(const grp_coord_t *c)
{
    return c->cfg.now_ms(c->cfg.clock_arg);
}

static int64_t now_ms(const grp_coord_t *c)
{
    return grp__now_ms(c);
}

int64_t grp__wall_ms(const grp_coord_t *c)
{
    return c->cfg.wall_ms(c->cfg.clock_arg);
}

static int64_t wall_ms(const grp_coord_t *c)
{
    return grp__wall_ms(c);
}

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* prefix-<uuid>, as Kafka names members. */
char *grp__new_member_id(const char *prefix)
{
    uint8_t r[16];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        for (size_t i = 0; i < sizeof(r); i++)
            r[i] = (uint8_t)rand();
    size_t n = strlen(prefix) + 38;
    char *id = malloc(n);
    if (!id)
        return NULL;
    snprintf(id, n, "%s-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             prefix, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11],
             r[12], r[13], r[14], r[15]);
    return id;
}

void grp__protocols_free(grp_protocol_t *p, int n)
{
    for (int i = 0; i < n; i++) {
        free((char *)p[i].name);
        free((uint8_t *)p[i].metadata);
    }
    free(p);
}

grp_protocol_t *grp__protocols_dup(const grp_protocol_t *p, int n)
{
    grp_protocol_t *d = calloc((size_t)(n ? n : 1), sizeof(*d));
    if (!d)
        return NULL;
    for (int i = 0; i < n; i++) {
        d[i].name = strdup(p[i].name);
        d[i].metadata_len = p[i].metadata_len > 0 ? p[i].metadata_len : 0;
        d[i].metadata = malloc((size_t)d[i].metadata_len + 1);
        if (!d[i].name || !d[i].metadata) {
            grp__protocols_free(d, i + 1);
            return NULL;
        }
        if (d[i].metadata_len)
            memcpy((uint8_t *)d[i].metadata, p[i].metadata, (size_t)d[i].metadata_len);
    }
    return d;
}

static bool protocols_equal(const grp_member_t *m, const grp_protocol_t *p, int n)
{
    if (m->n_protocols != n)
        return false;
    for (int i = 0; i < n; i++) {
        int32_t len = p[i].metadata_len > 0 ? p[i].metadata_len : 0;
        if (strcmp(m->protocols[i].name, p[i].name) || m->protocols[i].metadata_len != len ||
            (len && memcmp(m->protocols[i].metadata, p[i].metadata, (size_t)len)))
            return false;
    }
    return true;
}

static const grp_protocol_t *member_protocol(const grp_member_t *m, const char *name)
{
    for (int i = 0; name && i < m->n_protocols; i++)
        if (!strcmp(m->protocols[i].name, name))
            return &m->protocols[i];
    return NULL;
}

static grp_member_t *member_find(const grp_t *g, const char *member_id)
{
    for (grp_member_t *m = g->members; m; m = m->next)
        if (!strcmp(m->member_id, member_id))
            return m;
    return NULL;
}

static grp_member_t *member_by_instance(const grp_t *g, const char *instance_id)
{
    for (grp_member_t *m = g->members; instance_id && m; m = m->next)
        if (m->instance_id && !strcmp(m->instance_id, instance_id))
            return m;
    return NULL;
}

static grp_pending_t **pending_find(grp_t *g, const char *member_id)
{
    for (grp_pending_t **pp = &g->pending; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->member_id, member_id))
            return pp;
    return NULL;
}

void grp__member_free(grp_member_t *m)
{
    free(m->member_id);
    free(m->instance_id);
    free(m->client_id);
    free(m->client_host);
    free(m->protocol_type);
    grp__protocols_free(m->protocols, m->n_protocols);
    free(m->assignment);
    free(m);
}

static int member_set_join(grp_member_t *m, const grp_join_req_t *q)
{
    grp_protocol_t *p = grp__protocols_dup(q->protocols, q->n_protocols);
    char *cid = strdup(q->client_id ? q->client_id : "");
    char *host = strdup(q->client_host ? q->client_host : "");
    char *pt = strdup(q->protocol_type);
    if (!p || !cid || !host || !pt) {
        if (p)
            grp__protocols_free(p, q->n_protocols);
        free(cid);
        free(host);
        free(pt);
        return ST_E_NOMEM;
    }
    grp__protocols_free(m->protocols, m->n_protocols);
    free(m->client_id);
    free(m->client_host);
    free(m->protocol_type);
    m->protocols = p;
    m->n_protocols = q->n_protocols;
    m->client_id = cid;
    m->client_host = host;
    m->protocol_type = pt;
    m->session_timeout_ms = q->session_timeout_ms;
    m->rebalance_timeout_ms = q->rebalance_timeout_ms;
    return 0;
}

static void touch(const grp_coord_t *c, grp_member_t *m)
{
    m->hb_deadline = now_ms(c) + m->session_timeout_ms;
}

static void join_fail(grp_join_cb cb, void *arg, int16_t err, const char *member_id)
{
    grp_join_result_t r = {.error_code = err, .generation_id = -1, .member_id = member_id};
    cb(arg, &r);
}

static void sync_fail(grp_sync_cb cb, void *arg, int16_t err)
{
    grp_sync_result_t r = {.error_code = err};
    cb(arg, &r);
}

/* Answer a member's waiting callbacks with err. */
void grp__member_fail_waiters(grp_member_t *m, int16_t err)
{
    if (m->join_cb) {
        grp_join_cb cb = m->join_cb;
        m->join_cb = NULL;
        join_fail(cb, m->join_arg, err, m->member_id);
    }
    if (m->sync_cb) {
        grp_sync_cb cb = m->sync_cb;
        m->sync_cb = NULL;
        sync_fail(cb, m->sync_arg, err);
    }
}

/* ---- Rebalance core ---- */

static int32_t max_rebalance_timeout(const grp_t *g)
{
    int32_t t = 0;
    for (const grp_member_t *m = g->members; m; m = m->next)
        if (m->rebalance_timeout_ms > t)
            t = m->rebalance_timeout_ms;
    return t;
}

static void prepare_rebalance(grp_coord_t *c, grp_t *g)
{
    if (g->state == GRP_COMPLETING_REBALANCE) {
        for (grp_member_t *m = g->members; m; m = m->next) {
            free(m->assignment);
            m->assignment = NULL;
            m->assignment_len = 0;
            if (m->sync_cb) {
                grp_sync_cb cb = m->sync_cb;
                m->sync_cb = NULL;
                sync_fail(cb, m->sync_arg, KP_ERR_REBALANCE_IN_PROGRESS);
            }
        }
    }
    int64_t now = now_ms(c);
    int32_t timeout = max_rebalance_timeout(g);
    g->initial_delay = g->state == GRP_EMPTY && c->cfg.initial_rebalance_delay_ms > 0;
    g->rebalance_start = now;
    if (g->initial_delay)
        g->deadline =
            now + (c->cfg.initial_rebalance_delay_ms < timeout ? c->cfg.initial_rebalance_delay_ms
                                                               : timeout);
    else
        g->deadline = now + timeout;
    ST_DEBUG("grp", "group=%s preparing rebalance generation=%d members=%d", g->id, g->generation,
             g->n_members);
    g->state = GRP_PREPARING_REBALANCE;
}

/* The protocol every member supports that most members prefer. */
static const char *select_protocol(const grp_t *g)
{
    const grp_member_t *first = g->members;
    const char *best = NULL;
    int best_votes = -1;
    for (int i = 0; first && i < first->n_protocols; i++) {
        const char *cand = first->protocols[i].name;
        bool all = true;
        for (const grp_member_t *m = g->members; m && all; m = m->next)
            all = member_protocol(m, cand) != NULL;
        if (!all)
            continue;
        int votes = 0;
        for (const grp_member_t *m = g->members; m; m = m->next) {
            for (int k = 0; k < m->n_protocols; k++) { /* the member's first supported one */
                bool ok = true;
                for (const grp_member_t *o = g->members; o && ok; o = o->next)
                    ok = member_protocol(o, m->protocols[k].name) != NULL;
                if (ok) {
                    votes += !strcmp(m->protocols[k].name, cand);
                    break;
                }
            }
        }
        if (votes > best_votes) {
            best = cand;
            best_votes = votes;
        }
    }
    return best;
}

static void answer_join(grp_t *g, grp_member_t *m, bool skip_assignment)
{
    grp_member_info_t *infos = NULL;
    int n = 0;
    bool leader = g->leader_id && !strcmp(g->leader_id, m->member_id);
    if (leader && (infos = calloc((size_t)g->n_members, sizeof(*infos)))) {
        for (grp_member_t *o = g->members; o; o = o->next) {
            const grp_protocol_t *p = member_protocol(o, g->protocol_name);
            infos[n++] = (grp_member_info_t){o->member_id, o->instance_id, p ? p->metadata : NULL,
                                             p ? p->metadata_len : 0};
        }
    }
    grp_join_result_t r = {
        .error_code = leader && !infos ? KP_ERR_UNKNOWN_SERVER_ERROR : KP_ERR_NONE,
        .generation_id = g->generation,
        .protocol_type = g->protocol_type,
        .protocol_name = g->protocol_name,
        .leader_id = g->leader_id,
        .member_id = m->member_id,
        .members = infos,
        .n_members = n,
        .skip_assignment = skip_assignment,
    };
    grp_join_cb cb = m->join_cb;
    m->join_cb = NULL;
    cb(m->join_arg, &r);
    free(infos);
}

static void remove_member(grp_coord_t *c, grp_t *g, grp_member_t *m, int16_t err);

/* The join phase ends: members that did not rejoin are removed, the generation advances. */
static void complete_join(grp_coord_t *c, grp_t *g)
{
    for (grp_member_t *m = g->members, *next; m; m = next) {
        next = m->next;
        if (!m->join_cb) {
            ST_DEBUG("grp", "group=%s member=%s did not rejoin in time", g->id, m->member_id);
            grp_member_t **pp = &g->members;
            while (*pp != m)
                pp = &(*pp)->next;
            *pp = m->next;
            g->n_members--;
            grp__member_fail_waiters(m, KP_ERR_UNKNOWN_MEMBER_ID);
            if (g->leader_id && !strcmp(g->leader_id, m->member_id)) {
                free(g->leader_id);
                g->leader_id = NULL;
            }
            grp__member_free(m);
        }
    }
    g->generation++;
    g->initial_delay = false;
    free(g->protocol_name);
    g->protocol_name = NULL;
    if (g->n_members == 0) {
        free(g->leader_id);
        g->leader_id = NULL;
        g->state = GRP_EMPTY;
        g->empty_since_ms = wall_ms(c);
        ST_DEBUG("grp", "group=%s empty generation=%d", g->id, g->generation);
        return;
    }
    g->protocol_name = xstrdup(select_protocol(g));
    if (!g->leader_id || !member_find(g, g->leader_id)) {
        free(g->leader_id);
        g->leader_id = strdup(g->members->member_id);
    }
    g->state = GRP_COMPLETING_REBALANCE;
    int64_t now = now_ms(c);
    g->deadline = now + max_rebalance_timeout(g);
    ST_DEBUG("grp", "group=%s generation=%d protocol=%s leader=%s members=%d", g->id, g->generation,
             g->protocol_name ? g->protocol_name : "-", g->leader_id ? g->leader_id : "-",
             g->n_members);
    for (grp_member_t *m = g->members; m; m = m->next) {
        m->is_new = false;
        m->hb_deadline = now + m->session_timeout_ms;
        if (m->join_cb)
            answer_join(g, m, false);
    }
}

void grp__prepare_rebalance(grp_coord_t *c, grp_t *g)
{
    prepare_rebalance(c, g);
}

static void check_join_complete(grp_coord_t *c, grp_t *g)
{
    if (g->state != GRP_PREPARING_REBALANCE || g->initial_delay || g->pending)
        return;
    for (grp_member_t *m = g->members; m; m = m->next)
        if (!m->join_cb)
            return;
    complete_join(c, g);
}

static void remove_member(grp_coord_t *c, grp_t *g, grp_member_t *m, int16_t err)
{
    grp_member_t **pp = &g->members;
    while (*pp != m)
        pp = &(*pp)->next;
    *pp = m->next;
    g->n_members--;
    grp__member_fail_waiters(m, err);
    if (g->leader_id && !strcmp(g->leader_id, m->member_id)) {
        free(g->leader_id);
        g->leader_id = NULL;
    }
    grp__member_free(m);
    if (g->state == GRP_STABLE || g->state == GRP_COMPLETING_REBALANCE)
        prepare_rebalance(c, g);
    check_join_complete(c, g);
}

/* ---- Groups ---- */

grp_t *grp__group_new(grp_coord_t *c, const char *id)
{
    grp_t *g = calloc(1, sizeof(*g));
    if (!g || !(g->id = strdup(id)) || !(g->protocol_type = strdup(""))) {
        if (g)
            free(g->id);
        free(g);
        return NULL;
    }
    g->state = GRP_EMPTY;
    g->incarnation = ++c->next_incarnation;
    g->empty_since_ms = wall_ms(c);
    uint32_t b = hash_str(id) % GRP_BUCKETS;
    g->next = c->buckets[b];
    c->buckets[b] = g;
    return g;
}

static void group_free(grp_t *g)
{
    for (grp_member_t *m = g->members, *next; m; m = next) {
        next = m->next;
        grp__member_fail_waiters(m, KP_ERR_COORDINATOR_NOT_AVAILABLE);
        grp__member_free(m);
    }
    for (grp_pending_t *p = g->pending, *next; p; p = next) {
        next = p->next;
        free(p->member_id);
        free(p);
    }
    for (int i = 0; i < g->n_offsets; i++) {
        free(g->offsets[i].topic);
        free(g->offsets[i].metadata);
    }
    free(g->offsets);
    free(g->id);
    free(g->protocol_type);
    free(g->protocol_name);
    free(g->leader_id);
    grp__cons_free(g->cg);
    free(g);
}

static void group_remove(grp_coord_t *c, grp_t *g)
{
    for (grp_t **pp = &c->buckets[hash_str(g->id) % GRP_BUCKETS]; *pp; pp = &(*pp)->next) {
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    }
    group_free(g);
}

grp_t *grp_find(const grp_coord_t *c, const char *group_id)
{
    for (grp_t *g = c->buckets[hash_str(group_id) % GRP_BUCKETS]; g; g = g->next)
        if (!strcmp(g->id, group_id))
            return g;
    return NULL;
}

grp_coord_t *grp_coord_new(const grp_config_t *cfg)
{
    grp_coord_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->cfg = *cfg;
    if (c->cfg.max_metadata_bytes <= 0)
        c->cfg.max_metadata_bytes = 1 << 20;
    if (c->cfg.cons_session_timeout_ms <= 0)
        c->cfg.cons_session_timeout_ms = 45000;
    if (c->cfg.cons_heartbeat_interval_ms <= 0)
        c->cfg.cons_heartbeat_interval_ms = 5000;
    if (c->cfg.n_cons_assignors <= 0) {
        c->cfg.cons_assignors[0] = GRP_ASSIGNOR_UNIFORM;
        c->cfg.cons_assignors[1] = GRP_ASSIGNOR_RANGE;
        c->cfg.n_cons_assignors = 2;
    }
    c->next_retention_check = now_ms(c) + GRP_RETENTION_TICK_MS;
    return c;
}

void grp_coord_free(grp_coord_t *c)
{
    if (!c)
        return;
    for (int b = 0; b < GRP_BUCKETS; b++) {
        for (grp_t *g = c->buckets[b], *next; g; g = next) {
            next = g->next;
            group_free(g);
        }
    }
    free(c);
}

/* ---- JoinGroup ---- */

/* Is some protocol of q supported by every member other than self? */
static bool supports_protocols(const grp_t *g, const grp_join_req_t *q, const grp_member_t *self)
{
    if (strcmp(g->protocol_type, q->protocol_type) != 0)
        return false;
    for (int i = 0; i < q->n_protocols; i++) {
        bool all = true;
        for (const grp_member_t *m = g->members; m && all; m = m->next)
            all = m == self || member_protocol(m, q->protocols[i].name) != NULL;
        if (all)
            return true;
    }
    return false;
}

static int16_t join_validate(const grp_coord_t *c, const grp_join_req_t *q)
{
    if (!q->group_id[0])
        return KP_ERR_INVALID_GROUP_ID;
    if (q->session_timeout_ms < c->cfg.min_session_timeout_ms ||
        q->session_timeout_ms > c->cfg.max_session_timeout_ms)
        return KP_ERR_INVALID_SESSION_TIMEOUT;
    if (q->n_protocols <= 0 || !q->protocol_type || !q->protocol_type[0])
        return KP_ERR_INCONSISTENT_GROUP_PROTOCOL;
    int64_t total = 0;
    for (int i = 0; i < q->n_protocols; i++)
        total += q->protocols[i].metadata_len > 0 ? q->protocols[i].metadata_len : 0;
    if (total > c->cfg.max_metadata_bytes)
        return KP_ERR_INVALID_REQUEST;
    return KP_ERR_NONE;
}

/* A member (new or rejoining) waits in the join phase. */
static void join_wait(grp_coord_t *c, grp_t *g, grp_member_t *m, grp_join_cb cb, void *arg)
{
    if (m->join_cb) /* a retried JoinGroup replaces the one still waiting */
        join_fail(m->join_cb, m->join_arg, KP_ERR_REBALANCE_IN_PROGRESS, m->member_id);
    m->join_cb = cb;
    m->join_arg = arg;
    touch(c, m);
    if (g->state != GRP_PREPARING_REBALANCE)
        prepare_rebalance(c, g);
    else if (g->initial_delay && m->is_new) {
        int64_t limit = g->rebalance_start + max_rebalance_timeout(g);
        int64_t d = now_ms(c) + c->cfg.initial_rebalance_delay_ms;
        g->deadline = d < limit ? d : limit;
    }
    check_join_complete(c, g);
}

static grp_member_t *member_add(grp_coord_t *c, grp_t *g, const grp_join_req_t *q, char *id_owned)
{
    grp_member_t *m = calloc(1, sizeof(*m));
    if (!m || member_set_join(m, q) != 0 ||
        (q->instance_id && !(m->instance_id = strdup(q->instance_id)))) {
        if (m)
            grp__member_free(m);
        free(id_owned);
        return NULL;
    }
    m->member_id = id_owned;
    m->is_new = true;
    touch(c, m);
    grp_member_t **pp = &g->members;
    while (*pp)
        pp = &(*pp)->next;
    *pp = m;
    g->n_members++;
    char *pt = g->n_members == 1 ? strdup(q->protocol_type) : NULL;
    if (pt) { /* the first member sets the group's protocol type */
        free(g->protocol_type);
        g->protocol_type = pt;
    }
    return m;
}

/* A static member rejoins with a new member id: the old id is fenced. */
static void join_static_known(
    grp_coord_t *c, grp_t *g, grp_member_t *m, const grp_join_req_t *q, grp_join_cb cb, void *arg)
{
    char *new_id = grp__new_member_id(q->instance_id);
    if (!new_id) {
        join_fail(cb, arg, KP_ERR_UNKNOWN_SERVER_ERROR, "");
        return;
    }
    grp__member_fail_waiters(m, KP_ERR_FENCED_INSTANCE_ID);
    bool unchanged = protocols_equal(m, q->protocols, q->n_protocols);
    bool was_leader = g->leader_id && !strcmp(g->leader_id, m->member_id);
    ST_DEBUG("grp", "group=%s static member instance=%s replaces %s with %s", g->id, q->instance_id,
             m->member_id, new_id);
    free(m->member_id);
    m->member_id = new_id;
    if (was_leader) {
        free(g->leader_id);
        g->leader_id = strdup(new_id);
    }
    if (member_set_join(m, q) != 0) {
        join_fail(cb, arg, KP_ERR_UNKNOWN_SERVER_ERROR, "");
        return;
    }
    touch(c, m);
    if (g->state == GRP_STABLE && unchanged) {
        /* Same subscription: keep the assignment, no rebalance (KIP-345). */
        m->join_cb = cb;
        m->join_arg = arg;
        answer_join(g, m, was_leader && q->supports_skip_assignment);
        return;
    }
    join_wait(c, g, m, cb, arg);
}

static void join_new(grp_coord_t *c, grp_t *g, const grp_join_req_t *q, grp_join_cb cb, void *arg)
{
    if (q->instance_id) {
        grp_member_t *m = member_by_instance(g, q->instance_id);
        if (m) {
            join_static_known(c, g, m, q, cb, arg);
            return;
        }
    }
    char *id = grp__new_member_id(
        q->instance_id ? q->instance_id
                       : (q->client_id && q->client_id[0] ? q->client_id : "member"));
    if (!id) {
        join_fail(cb, arg, KP_ERR_UNKNOWN_SERVER_ERROR, "");
        return;
    }
    if (q->require_known_member_id && !q->instance_id) {
        grp_pending_t *p = calloc(1, sizeof(*p));
        if (!p) {
            free(id);
            join_fail(cb, arg, KP_ERR_UNKNOWN_SERVER_ERROR, "");
            return;
        }
        p->member_id = id;
        p->deadline = now_ms(c) + q->session_timeout_ms;
        p->next = g->pending;
        g->pending = p;
        join_fail(cb, arg, KP_ERR_MEMBER_ID_REQUIRED, id);
        return;
    }
    grp_member_t *m = member_add(c, g, q, id);
    if (!m) {
        join_fail(cb, arg, KP_ERR_UNKNOWN_SERVER_ERROR, "");
        return;
    }
    join_wait(c, g, m, cb, arg);
}

static void join_known(grp_coord_t *c, grp_t *g, const grp_join_req_t *q, grp_join_cb cb, void *arg)
{
    grp_member_t *m = member_find(g, q->member_id);
    grp_pending_t **pp = m ? NULL : pending_find(g, q->member_id);
    if (pp) { /* the second JoinGroup of the MEMBER_ID_REQUIRED flow */
        grp_pending_t *p = *pp;
        *pp = p->next;
        char *id = p->member_id;
        free(p);
        m = member_add(c, g, q, id);
        if (!m) {
            join_fail(cb, arg, KP_ERR_UNKNOWN_SERVER_ERROR, q->member_id);
            return;
        }
        join_wait(c, g, m, cb, arg);
        return;
    }
    if (!m) {
        join_fail(cb, arg, KP_ERR_UNKNOWN_MEMBER_ID, q->member_id);
        return;
    }
    bool unchanged = protocols_equal(m, q->protocols, q->n_protocols);
    bool leader = g->leader_id && !strcmp(g->leader_id, m->member_id);
    if (g->state == GRP_PREPARING_REBALANCE || !unchanged || (g->state == GRP_STABLE && leader)) {
        if (member_set_join(m, q) != 0) {
            join_fail(cb, arg, KP_ERR_UNKNOWN_SERVER_ERROR, q->member_id);
            return;
        }
        join_wait(c, g, m, cb, arg);
        return;
    }
    /* Completing or Stable with nothing new: the current generation stands. */
    touch(c, m);
    m->join_cb = cb;
    m->join_arg = arg;
    answer_join(g, m, false);
}

void grp_join(grp_coord_t *c, const grp_join_req_t *q, grp_join_cb cb, void *arg)
{
    int16_t err = join_validate(c, q);
    if (err) {
        join_fail(cb, arg, err, q->member_id);
        return;
    }
    grp_t *g = grp_find(c, q->group_id);
    if (!g && q->member_id[0]) {
        join_fail(cb, arg, KP_ERR_UNKNOWN_MEMBER_ID, q->member_id);
        return;
    }
    if (!g && !(g = grp__group_new(c, q->group_id))) {
        join_fail(cb, arg, KP_ERR_UNKNOWN_SERVER_ERROR, q->member_id);
        return;
    }
    if (g->state == GRP_DEAD) {
        join_fail(cb, arg, KP_ERR_COORDINATOR_NOT_AVAILABLE, q->member_id);
        return;
    }
    if (g->cg) { /* a consumer-protocol group: classic members join it as Kafka 4 lets them */
        if (g->state != GRP_EMPTY) {
            grp__cons_join(c, g, q, cb, arg);
            return;
        }
        grp__cons_free(g->cg); /* an empty one becomes classic, as Kafka converts it */
        g->cg = NULL;
    }
    grp_member_t *self = q->member_id[0] ? member_find(g, q->member_id) : NULL;
    if (g->state != GRP_EMPTY && !supports_protocols(g, q, self)) {
        join_fail(cb, arg, KP_ERR_INCONSISTENT_GROUP_PROTOCOL, q->member_id);
        return;
    }
    if (q->member_id[0] && q->instance_id) {
        grp_member_t *owner = member_by_instance(g, q->instance_id);
        if (owner && strcmp(owner->member_id, q->member_id) != 0) {
            join_fail(cb, arg, KP_ERR_FENCED_INSTANCE_ID, q->member_id);
            return;
        }
    }
    if (q->member_id[0])
        join_known(c, g, q, cb, arg);
    else
        join_new(c, g, q, cb, arg);
}

/* ---- SyncGroup ---- */

/* Common checks of Sync/Heartbeat/Commit: the member and its instance. */
static int16_t
member_check(const grp_t *g, const char *member_id, const char *instance_id, grp_member_t **out)
{
    if (g->state == GRP_DEAD)
        return KP_ERR_COORDINATOR_NOT_AVAILABLE;
    if (instance_id) {
        grp_member_t *owner = member_by_instance(g, instance_id);
        if (owner && strcmp(owner->member_id, member_id) != 0)
            return KP_ERR_FENCED_INSTANCE_ID;
    }
    *out = member_find(g, member_id);
    return *out ? KP_ERR_NONE : KP_ERR_UNKNOWN_MEMBER_ID;
}

static void answer_sync(grp_t *g, grp_member_t *m)
{
    grp_sync_result_t r = {KP_ERR_NONE, g->protocol_type, g->protocol_name, m->assignment,
                           m->assignment_len};
    grp_sync_cb cb = m->sync_cb;
    m->sync_cb = NULL;
    cb(m->sync_arg, &r);
}

void grp_sync(grp_coord_t *c, const grp_sync_req_t *q, grp_sync_cb cb, void *arg)
{
    grp_t *g = grp_find(c, q->group_id);
    if (g && g->cg && g->state != GRP_DEAD) {
        grp__cons_sync(c, g, q, cb, arg);
        return;
    }
    grp_member_t *m = NULL;
    int16_t err = g ? member_check(g, q->member_id, q->instance_id, &m) : KP_ERR_UNKNOWN_MEMBER_ID;
    if (!err && q->generation_id != g->generation)
        err = KP_ERR_ILLEGAL_GENERATION;
    if (!err && ((q->protocol_type && strcmp(q->protocol_type, g->protocol_type) != 0) ||
                 (q->protocol_name && !str_eq(q->protocol_name, g->protocol_name))))
        err = KP_ERR_INCONSISTENT_GROUP_PROTOCOL;
    if (!err && g->state == GRP_EMPTY)
        err = KP_ERR_UNKNOWN_MEMBER_ID;
    if (!err && g->state == GRP_PREPARING_REBALANCE)
        err = KP_ERR_REBALANCE_IN_PROGRESS;
    if (err) {
        sync_fail(cb, arg, err);
        return;
    }
    touch(c, m);
    if (m->sync_cb)
        sync_fail(m->sync_cb, m->sync_arg, KP_ERR_REBALANCE_IN_PROGRESS);
    m->sync_cb = cb;
    m->sync_arg = arg;
    if (g->state == GRP_STABLE) {
        answer_sync(g, m);
        return;
    }
    /* Completing: the leader's assignment moves the group to Stable. */
    if (!g->leader_id || strcmp(g->leader_id, m->member_id) != 0)
        return;
    for (grp_member_t *o = g->members; o; o = o->next) {
        free(o->assignment);
        o->assignment = NULL;
        o->assignment_len = 0;
        for (int i = 0; i < q->n_assignments; i++) {
            const grp_assignment_t *a = &q->assignments[i];
            if (strcmp(a->member_id, o->member_id) != 0 || a->assignment_len <= 0)
                continue;
            if ((o->assignment = malloc((size_t)a->assignment_len))) {
                memcpy(o->assignment, a->assignment, (size_t)a->assignment_len);
                o->assignment_len = a->assignment_len;
            }
            break;
        }
    }
    g->state = GRP_STABLE;
    ST_DEBUG("grp", "group=%s stable generation=%d", g->id, g->generation);
    for (grp_member_t *o = g->members; o; o = o->next)
        if (o->sync_cb)
            answer_sync(g, o);
}

/* ---- Heartbeat, LeaveGroup ---- */

int16_t grp_heartbeat(grp_coord_t *c,
                      const char *group_id,
                      int32_t generation_id,
                      const char *member_id,
                      const char *instance_id)
{
    grp_t *g = grp_find(c, group_id);
    if (g && g->cg && g->state != GRP_DEAD)
        return grp__cons_heartbeat(c, g, generation_id, member_id, instance_id);
    grp_member_t *m = NULL;
    int16_t err = g ? member_check(g, member_id, instance_id, &m) : KP_ERR_UNKNOWN_MEMBER_ID;
    if (err)
        return err;
    if (generation_id != g->generation)
        return KP_ERR_ILLEGAL_GENERATION;
    switch (g->state) {
    case GRP_EMPTY:
        return KP_ERR_UNKNOWN_MEMBER_ID;
    case GRP_PREPARING_REBALANCE:
        touch(c, m);
        return KP_ERR_REBALANCE_IN_PROGRESS;
    default:
        touch(c, m);
        return KP_ERR_NONE;
    }
}

int16_t
grp_leave(grp_coord_t *c, const char *group_id, const char *member_id, const char *instance_id)
{
    grp_t *g = grp_find(c, group_id);
    if (!g)
        return KP_ERR_UNKNOWN_MEMBER_ID;
    if (g->state == GRP_DEAD)
        return KP_ERR_COORDINATOR_NOT_AVAILABLE;
    if (g->cg)
        return grp__cons_leave(c, g, member_id, instance_id);
    grp_member_t *m;
    if (instance_id) {
        m = member_by_instance(g, instance_id);
        if (!m)
            return KP_ERR_UNKNOWN_MEMBER_ID;
        if (member_id && member_id[0] && strcmp(member_id, m->member_id) != 0)
            return KP_ERR_FENCED_INSTANCE_ID;
    } else {
        grp_pending_t **pp = pending_find(g, member_id);
        if (pp) {
            grp_pending_t *p = *pp;
            *pp = p->next;
            free(p->member_id);
            free(p);
            check_join_complete(c, g);
            return KP_ERR_NONE;
        }
        m = member_find(g, member_id);
        if (!m)
            return KP_ERR_UNKNOWN_MEMBER_ID;
    }
    ST_DEBUG("grp", "group=%s member=%s leaves", g->id, m->member_id);
    remove_member(c, g, m, KP_ERR_UNKNOWN_MEMBER_ID);
    return KP_ERR_NONE;
}

/* ---- Timers ---- */

static void group_tick(grp_coord_t *c, grp_t *g, int64_t now)
{
    for (grp_pending_t **pp = &g->pending; *pp;) {
        grp_pending_t *p = *pp;
        if (now >= p->deadline) {
            *pp = p->next;
            free(p->member_id);
            free(p);
            check_join_complete(c, g);
        } else {
            pp = &p->next;
        }
    }
    if (g->state == GRP_PREPARING_REBALANCE && now >= g->deadline) {
        complete_join(c, g);
    } else if (g->state == GRP_COMPLETING_REBALANCE && now >= g->deadline) {
        /* The sync phase timed out: drop members that never synced, rebalance again. */
        for (grp_member_t *m = g->members, *next; m; m = next) {
            next = m->next;
            if (!m->sync_cb && g->state == GRP_COMPLETING_REBALANCE)
                remove_member(c, g, m, KP_ERR_UNKNOWN_MEMBER_ID);
        }
        if (g->state == GRP_COMPLETING_REBALANCE) {
            prepare_rebalance(c, g);
            check_join_complete(c, g);
        }
    }
    for (grp_member_t *m = g->members, *next; m; m = next) {
        next = m->next;
        /* Waiting in Join or Sync keeps a member alive; the phase deadlines bound that. */
        if (!m->join_cb && !m->sync_cb && now >= m->hb_deadline) {
            ST_DEBUG("grp", "group=%s member=%s session expired", g->id, m->member_id);
            remove_member(c, g, m, KP_ERR_UNKNOWN_MEMBER_ID);
            next = g->members; /* removal may have answered and changed others */
        }
    }
}

void grp_coord_tick(grp_coord_t *c)
{
    int64_t now = now_ms(c);
    bool retention = now >= c->next_retention_check;
    if (retention)
        c->next_retention_check = now + GRP_RETENTION_TICK_MS;
    int64_t wall = wall_ms(c);
    for (int b = 0; b < GRP_BUCKETS; b++) {
        for (grp_t *g = c->buckets[b], *next; g; g = next) {
            next = g->next;
            if (g->state != GRP_DEAD && g->state != GRP_EMPTY)
                group_tick(c, g, now);
            else if (g->pending)
                group_tick(c, g, now);
            if (g->cg && g->state != GRP_DEAD)
                grp__cons_tick(c, g, now);
            if (retention && g->state == GRP_EMPTY && !g->pending &&
                wall - g->empty_since_ms >= c->cfg.offsets_retention_ms) {
                ST_INFO("grp", "group=%s expired (offsets.retention.minutes), %d offsets", g->id,
                        g->n_offsets);
                g->state = GRP_DEAD;
                if (c->cfg.on_expire)
                    c->cfg.on_expire(c->cfg.expire_arg, g->id);
                else
                    group_remove(c, g);
            }
        }
    }
}

int64_t grp_coord_next_deadline(const grp_coord_t *c)
{
    int64_t d = c->next_retention_check;
    for (int b = 0; b < GRP_BUCKETS; b++) {
        for (const grp_t *g = c->buckets[b]; g; g = g->next) {
            for (const grp_pending_t *p = g->pending; p; p = p->next)
                d = p->deadline < d ? p->deadline : d;
            if (g->state == GRP_PREPARING_REBALANCE || g->state == GRP_COMPLETING_REBALANCE)
                d = g->deadline < d ? g->deadline : d;
            if (g->cg && g->state != GRP_DEAD) {
                int64_t cd = grp__cons_deadline(g);
                d = cd >= 0 && cd < d ? cd : d;
            }
            if (g->state == GRP_DEAD || g->state == GRP_EMPTY)
                continue;
            for (const grp_member_t *m = g->members; m; m = m->next)
                if (!m->join_cb && !m->sync_cb && m->hb_deadline < d)
                    d = m->hb_deadline;
        }
    }
    return d;
}

/* ---- Offsets ---- */

int16_t grp_commit_check(grp_coord_t *c,
                         const char *group_id,
                         int32_t generation_id,
                         const char *member_id,
                         const char *instance_id,
                         uint64_t *incarnation)
{
    if (!group_id[0])
        return KP_ERR_INVALID_GROUP_ID;
    grp_t *g = grp_find(c, group_id);
    if (!g) {
        if (generation_id >= 0)
            return KP_ERR_ILLEGAL_GENERATION;
        if (!(g = grp__group_new(c, group_id)))
            return KP_ERR_UNKNOWN_SERVER_ERROR;
    }
    *incarnation = g->incarnation;
    if (g->state == GRP_DEAD)
        return KP_ERR_COORDINATOR_NOT_AVAILABLE;
    if (g->cg)
        return grp__cons_commit_check(g, generation_id, member_id);
    if (instance_id) {
        grp_member_t *owner = member_by_instance(g, instance_id);
        if (owner && strcmp(owner->member_id, member_id ? member_id : "") != 0)
            return KP_ERR_FENCED_INSTANCE_ID;
    }
    if (generation_id < 0 && g->state == GRP_EMPTY)
        return KP_ERR_NONE; /* a simple (unmanaged) consumer */
    grp_member_t *m = member_id ? member_find(g, member_id) : NULL;
    if (!m)
        return KP_ERR_UNKNOWN_MEMBER_ID;
    if (generation_id != g->generation)
        return KP_ERR_ILLEGAL_GENERATION;
    if (g->state == GRP_COMPLETING_REBALANCE)
        return KP_ERR_REBALANCE_IN_PROGRESS;
    touch(c, m);
    return KP_ERR_NONE;
}

int16_t grp_txn_commit_check(grp_coord_t *c,
                             const char *group_id,
                             int32_t generation_id,
                             const char *member_id,
                             const char *instance_id)
{
    bool member_given = member_id && member_id[0];
    grp_t *g = grp_find(c, group_id);
    if (!g)
        return generation_id >= 0 ? KP_ERR_ILLEGAL_GENERATION : KP_ERR_NONE;
    if (g->state == GRP_DEAD)
        return KP_ERR_COORDINATOR_NOT_AVAILABLE;
    if (generation_id < 0 && !member_given && !instance_id)
        return KP_ERR_NONE; /* the fields are optional: an older client's commit */
    if (g->cg)
        return grp__cons_commit_check(g, generation_id, member_id);
    if (generation_id < 0 && g->state == GRP_EMPTY)
        return KP_ERR_NONE;
    if (instance_id) {
        grp_member_t *owner = member_by_instance(g, instance_id);
        if (!owner)
            return KP_ERR_UNKNOWN_MEMBER_ID;
        if (strcmp(owner->member_id, member_id ? member_id : "") != 0)
            return KP_ERR_FENCED_INSTANCE_ID;
    } else if (!member_given || !member_find(g, member_id)) {
        return KP_ERR_UNKNOWN_MEMBER_ID;
    }
    return generation_id != g->generation ? KP_ERR_ILLEGAL_GENERATION : KP_ERR_NONE;
}

static int offset_cmp(const grp_offset_t *o, const char *topic, int32_t partition)
{
    int r = strcmp(o->topic, topic);
    if (r)
        return r;
    return o->partition < partition ? -1 : o->partition > partition;
}

/* Index of (topic, partition), or -(insertion point) - 1. */
static int offset_search(const grp_t *g, const char *topic, int32_t partition)
{
    int lo = 0, hi = g->n_offsets - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int r = offset_cmp(&g->offsets[mid], topic, partition);
        if (r == 0)
            return mid;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -lo - 1;
}

static int offsets_reserve(grp_t *g)
{
    if (g->n_offsets < g->cap_offsets)
        return 0;
    int cap = g->cap_offsets ? g->cap_offsets * 2 : 8;
    grp_offset_t *n = realloc(g->offsets, (size_t)cap * sizeof(*n));
    if (!n)
        return ST_E_NOMEM;
    g->offsets = n;
    g->cap_offsets = cap;
    return 0;
}

int grp_offset_put(grp_coord_t *c,
                   const char *group_id,
                   uint64_t incarnation,
                   const char *topic,
                   int32_t partition,
                   int64_t offset,
                   int32_t leader_epoch,
                   const char *metadata,
                   int64_t commit_ms)
{
    grp_t *g = grp_find(c, group_id);
    if (incarnation == 0 && !g && !(g = grp__group_new(c, group_id)))
        return ST_E_NOMEM; /* incarnation 0: loading at start-up */
    if (!g || g->state == GRP_DEAD || (incarnation && g->incarnation != incarnation))
        return 0;
    char *md = metadata ? strdup(metadata) : NULL;
    if (metadata && !md)
        return ST_E_NOMEM;
    int i = offset_search(g, topic, partition);
    if (i < 0) {
        i = -i - 1;
        char *t = strdup(topic);
        if (!t || offsets_reserve(g) != 0) {
            free(t);
            free(md);
            return ST_E_NOMEM;
        }
        memmove(&g->offsets[i + 1], &g->offsets[i],
                (size_t)(g->n_offsets - i) * sizeof(*g->offsets));
        g->n_offsets++;
        g->offsets[i] = (grp_offset_t){.topic = t, .partition = partition};
    }
    grp_offset_t *o = &g->offsets[i];
    free(o->metadata);
    o->metadata = md;
    o->offset = offset;
    o->leader_epoch = leader_epoch;
    o->commit_ms = commit_ms;
    if (g->state == GRP_EMPTY && commit_ms > g->empty_since_ms)
        g->empty_since_ms = commit_ms; /* retention counts from the last commit */
    return 0;
}

const grp_offset_t *
grp_offset_get(const grp_coord_t *c, const char *group_id, const char *topic, int32_t partition)
{
    grp_t *g = grp_find(c, group_id);
    if (!g || g->state == GRP_DEAD)
        return NULL;
    int i = offset_search(g, topic, partition);
    return i >= 0 ? &g->offsets[i] : NULL;
}

const grp_offset_t *grp_offsets(const grp_t *g, int *n)
{
    *n = g->n_offsets;
    return g->offsets;
}

static void group_offsets_delete(grp_t *g, const char *topic, int32_t partition)
{
    int k = 0;
    for (int i = 0; i < g->n_offsets; i++) {
        grp_offset_t *o = &g->offsets[i];
        if ((!topic || !strcmp(o->topic, topic)) && (partition < 0 || o->partition == partition)) {
            free(o->topic);
            free(o->metadata);
        } else {
            g->offsets[k++] = *o;
        }
    }
    g->n_offsets = k;
}

void grp_offsets_delete(grp_coord_t *c, const char *group_id, const char *topic, int32_t partition)
{
    grp_t *g = grp_find(c, group_id);
    if (g)
        group_offsets_delete(g, topic, partition);
}

void grp_offsets_delete_topic(grp_coord_t *c, const char *topic)
{
    for (int b = 0; b < GRP_BUCKETS; b++)
        for (grp_t *g = c->buckets[b]; g; g = g->next)
            group_offsets_delete(g, topic, -1);
}

/* ---- Lookup, listing, deletion ---- */

grp_t *grp_first(const grp_coord_t *c)
{
    for (int b = 0; b < GRP_BUCKETS; b++)
        if (c->buckets[b])
            return c->buckets[b];
    return NULL;
}

grp_t *grp_next(const grp_coord_t *c, const grp_t *g)
{
    if (g->next)
        return g->next;
    for (int b = (int)(hash_str(g->id) % GRP_BUCKETS) + 1; b < GRP_BUCKETS; b++)
        if (c->buckets[b])
            return c->buckets[b];
    return NULL;
}

const char *grp_id(const grp_t *g)
{
    return g->id;
}

grp_state_t grp_state(const grp_t *g)
{
    return g->state;
}

int32_t grp_generation(const grp_t *g)
{
    return g->generation;
}

const char *grp_protocol_type(const grp_t *g)
{
    return g->protocol_type;
}

const char *grp_protocol_name(const grp_t *g)
{
    return g->protocol_name;
}

const char *grp_leader(const grp_t *g)
{
    return g->leader_id;
}

int grp_n_members(const grp_t *g)
{
    return g->n_members;
}

void grp_member_desc(const grp_t *g, int i, grp_member_desc_t *out)
{
    const grp_member_t *m = g->members;
    while (m && i-- > 0)
        m = m->next;
    memset(out, 0, sizeof(*out));
    if (!m)
        return;
    const grp_protocol_t *p = member_protocol(m, g->protocol_name);
    *out = (grp_member_desc_t){m->member_id,   m->instance_id,         m->client_id,
                               m->client_host, p ? p->metadata : NULL, p ? p->metadata_len : 0,
                               m->assignment,  m->assignment_len};
}

bool grp_subscribed(const grp_t *g, const char *topic)
{
    if (g->cg)
        return grp__cons_subscribed(g, topic);
    if (strcmp(g->protocol_type, "consumer") != 0)
        return g->n_members > 0; /* unknown protocol: assume it may read anything */
    for (const grp_member_t *m = g->members; m; m = m->next) {
        const grp_protocol_t *p = member_protocol(m, g->protocol_name);
        if (!p && m->n_protocols > 0)
            p = &m->protocols[0];
        if (!p)
            continue;
        kp_arena_t a;
        kp_arena_init(&a, 1u << 20);
        kp_reader_t r;
        kp_reader_init(&r, p->metadata, (size_t)p->metadata_len);
        kp_consumer_protocol_subscription_t s;
        int16_t v = (int16_t)kp_read_i16(&r);
        bool hit = false;
        if (kp_consumer_protocol_subscription_decode(&r, v > 3 ? 3 : v, &s, &a) == 0) {
            for (int i = 0; i < s.n_topics && !hit; i++)
                hit = (size_t)s.topics[i].len == strlen(topic) &&
                      !memcmp(s.topics[i].ptr, topic, strlen(topic));
        } else {
            hit = true; /* unreadable subscription: be safe */
        }
        kp_arena_fini(&a);
        if (hit)
            return true;
    }
    return false;
}

int16_t grp_delete_begin(grp_coord_t *c, const char *group_id)
{
    grp_t *g = grp_find(c, group_id);
    if (!g || g->state == GRP_DEAD)
        return KP_ERR_GROUP_ID_NOT_FOUND;
    if (g->state != GRP_EMPTY || g->pending)
        return KP_ERR_NON_EMPTY_GROUP;
    g->state = GRP_DEAD;
    return KP_ERR_NONE;
}

void grp_delete_end(grp_coord_t *c, const char *group_id)
{
    grp_t *g = grp_find(c, group_id);
    if (g && g->state == GRP_DEAD)
        group_remove(c, g);
}
