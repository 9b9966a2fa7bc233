/* grp_cons.c - KIP-848, the consumer group protocol of one shard's coordinator: members with
 * epochs, server-side target assignment (uniform and range assignors), and reconciliation
 * without a stop-the-world rebalance, beside the classic protocol of grp.c in the same groups
 * table. Data path: kh_group.c decodes a ConsumerGroupHeartbeat on the connection's shard and
 * posts it to the group's shard -> grp_consumer_heartbeat() updates the member, bumps the group
 * epoch when membership, subscriptions or the subscribed topics' partitions changed, recomputes
 * the target assignment when the group epoch is ahead of it, and moves the member towards its
 * target -> the answer carries the member's epoch and (when it changed) its assignment.
 * Invariants: 1. a partition is owned (assigned or being revoked) by at most one member: a member
 *                gets a partition of its target only once no other member owns it;
 *             2. a member's epoch reaches the assignment epoch only after it revoked every
 *                partition its target no longer has;
 *             3. group_epoch >= assignment_epoch >= every member's epoch.
 * Classic members (Kafka 4's group.consumer.migration.policy=bidirectional): a consumer-protocol
 * member joining a classic "consumer" group converts it (upgrade: classic members keep their
 * partitions at an epoch equal to the generation); classic members then speak JoinGroup,
 * SyncGroup and Heartbeat to the consumer group, reconciled on their JoinGroup (generation =
 * member epoch, no leader, the assignment comes in SyncGroup) and told REBALANCE_IN_PROGRESS by
 * Heartbeat when they have something to revoke or gain; when the last consumer-protocol member
 * leaves, the group converts back to classic and rebalances (downgrade).
 * Durability: after each call that changed a group's membership, epochs or assignments, the
 * group's state is handed to cfg.on_cons_state (kh_group.c writes it behind into core/goffs)
 * and grp_cons_restore() brings it back at start-up, so members keep their epochs and
 * partitions across a restart. A state lost to a crash is older than what members were told:
 * a member whose epoch is ahead is fenced (FENCED_MEMBER_EPOCH) and rejoins, and a partition a
 * member was revoking stays its until it reports it gone, so no partition is owned twice. */
#include "core/meta.h"
#include "core/st_log.h"
#include "kafka/grp_int.h"
#include "kafka/kp.h"

#include <regex.h>
#include <stdlib.h>
#include <string.h>

enum { MS_STABLE, MS_UNREVOKED, MS_UNRELEASED };

typedef struct cmember cmember_t;
struct cmember {
    cmember_t *next;
    char *member_id;   /* owned */
    char *instance_id; /* owned, NULL for dynamic members */
    char *rack_id;     /* owned, NULL */
    char *client_id;   /* owned */
    char *client_host; /* owned */
    int32_t epoch;     /* -2: a static member that left for now */
    int32_t prev_epoch;
    int state;
    int32_t rebalance_timeout_ms;
    char **topics; /* owned */
    int n_topics;
    char *regex; /* owned, NULL for none */
    regex_t re;
    int assignor;                           /* GRP_ASSIGNOR_*, 0 for none asked */
    grp_tp_t *assigned, *revoking, *target; /* owned, sorted */
    int n_assigned, n_revoking, n_target;
    int64_t session_deadline; /* monotonic ms */
    int64_t revoke_deadline;  /* while MS_UNREVOKED */
    /* a classic-protocol member (JoinGroup/SyncGroup/Heartbeat) */
    bool classic;
    int32_t session_timeout_ms;
    grp_protocol_t *protocols; /* owned, classic members only */
    int n_protocols;
};

struct grp_cgroup {
    cmember_t *members;
    int n_members;
    int32_t group_epoch, assignment_epoch;
    int assignor;
    uint64_t meta_sum;   /* of the subscribed topics' (id, partitions) at the last epoch */
    bool saved;          /* a state was handed to cfg.on_cons_state (not a deletion) */
    uint64_t saved_hash; /* of that state */
};

/* ---- Partition sets (sorted arrays of grp_tp_t) ---- */

static int tp_cmp(const void *a, const void *b)
{
    const grp_tp_t *x = a, *y = b;
    int c = memcmp(x->topic_id, y->topic_id, 16);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

static bool tp_has(const grp_tp_t *s, int n, const grp_tp_t *tp)
{
    return n > 0 && bsearch(tp, s, (size_t)n, sizeof(*s), tp_cmp) != NULL;
}

static bool tp_set_eq(const grp_tp_t *a, int na, const grp_tp_t *b, int nb)
{
    return na == nb && (na == 0 || !memcmp(a, b, (size_t)na * sizeof(*a)));
}

/* ---- Members ---- */

static void member_free(cmember_t *m)
{
    free(m->member_id);
    free(m->instance_id);
    free(m->rack_id);
    free(m->client_id);
    free(m->client_host);
    for (int i = 0; i < m->n_topics; i++)
        free(m->topics[i]);
    free(m->topics);
    if (m->regex) {
        regfree(&m->re);
        free(m->regex);
    }
    free(m->assigned);
    free(m->revoking);
    free(m->target);
    grp__protocols_free(m->protocols, m->n_protocols);
    free(m);
}

void grp__cons_free(grp_cgroup_t *cg)
{
    if (!cg)
        return;
    for (cmember_t *m = cg->members, *next; m; m = next) {
        next = m->next;
        member_free(m);
    }
    free(cg);
}

static cmember_t *member_find(const grp_cgroup_t *cg, const char *id)
{
    for (cmember_t *m = cg->members; m; m = m->next)
        if (!strcmp(m->member_id, id))
            return m;
    return NULL;
}

static cmember_t *member_by_instance(const grp_cgroup_t *cg, const char *instance_id)
{
    for (cmember_t *m = cg->members; instance_id && m; m = m->next)
        if (m->instance_id && !strcmp(m->instance_id, instance_id))
            return m;
    return NULL;
}

static void group_set_state(grp_coord_t *c, grp_t *g)
{
    grp_state_t s = g->cg->n_members ? GRP_STABLE : GRP_EMPTY;
    if (s == GRP_EMPTY && g->state != GRP_EMPTY)
        g->empty_since_ms = grp__wall_ms(c);
    g->state = s;
}

static void maybe_downgrade(grp_coord_t *c, grp_t *g);
static void persist(grp_coord_t *c, grp_t *g);

static void member_remove(grp_coord_t *c, grp_t *g, cmember_t *m, const char *why)
{
    grp_cgroup_t *cg = g->cg;
    for (cmember_t **pp = &cg->members; *pp; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    }
    ST_DEBUG("grp", "group=%s consumer member=%s %s", g->id, m->member_id, why);
    member_free(m);
    cg->n_members--;
    cg->group_epoch++;
    group_set_state(c, g);
}

/* Does m subscribe to topic t? */
static bool subscribes(const cmember_t *m, const meta_topic_t *t)
{
    for (int i = 0; i < m->n_topics; i++)
        if (!strcmp(m->topics[i], t->name))
            return true;
    return m->regex && !regexec(&m->re, t->name, 0, NULL, 0);
}

static uint64_t topic_hash(const meta_topic_t *t)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 16; i++)
        h = (h ^ t->id[i]) * 1099511628211ull;
    return (h ^ (uint64_t)(uint32_t)t->n_partitions) * 1099511628211ull;
}

/* A sum over the group's subscribed topics of their (id, partitions): changes when a
 * subscribed topic is created, deleted or grows. */
static uint64_t meta_sum(const grp_cgroup_t *cg, const meta_snap_t *snap)
{
    uint64_t sum = 0;
    bool *mark = calloc((size_t)snap->n_topics + 1, sizeof(*mark));
    if (mark) { /* names by binary search; only regexes scan every topic */
        for (const cmember_t *m = cg->members; m; m = m->next) {
            for (int i = 0; i < m->n_topics; i++) {
                const meta_topic_t *t = meta_snap_find(snap, m->topics[i], strlen(m->topics[i]));
                if (t)
                    mark[t - snap->topics] = true;
            }
            for (int i = 0; m->regex && i < snap->n_topics; i++)
                mark[i] |= !regexec(&m->re, snap->topics[i].name, 0, NULL, 0);
        }
        for (int i = 0; i < snap->n_topics; i++)
            if (mark[i])
                sum += topic_hash(&snap->topics[i]);
        free(mark);
        return sum;
    }
    for (int i = 0; i < snap->n_topics; i++) {
        bool sub = false;
        for (const cmember_t *m = cg->members; m && !sub; m = m->next)
            sub = subscribes(m, &snap->topics[i]);
        if (sub)
            sum += topic_hash(&snap->topics[i]);
    }
    return sum;
}

/* ---- Target assignment ---- */

static int member_id_cmp(const void *a, const void *b)
{
    return strcmp((*(cmember_t *const *)a)->member_id, (*(cmember_t *const *)b)->member_id);
}

typedef struct {
    cmember_t **ms; /* sorted by member id */
    int n_ms;
    const meta_snap_t *snap;
    bool *sub;  /* sub[mi * n_topics + ti] */
    int *base;  /* first slot of topic ti in owner[] */
    int *owner; /* member index per (topic, partition) slot, -1 free */
    int *count; /* partitions per member */
    int n_slots;
    const meta_topic_t *last; /* lookup cache: targets are sorted by topic id */
} asg_t;

static const meta_topic_t *topic_of(asg_t *a, const grp_tp_t *tp)
{
    if (!a->last || memcmp(a->last->id, tp->topic_id, 16))
        a->last = meta_snap_find_id(a->snap, tp->topic_id);
    return a->last;
}

static int slot_of(asg_t *a, const grp_tp_t *tp)
{
    const meta_topic_t *t = topic_of(a, tp);
    if (!t || tp->partition < 0 || tp->partition >= t->n_partitions)
        return -1;
    return a->base[t - a->snap->topics] + tp->partition;
}

static void assign_range(asg_t *a)
{
    int nt = a->snap->n_topics;
    for (int ti = 0; ti < nt; ti++) {
        int n_sub = 0;
        for (int mi = 0; mi < a->n_ms; mi++)
            n_sub += a->sub[mi * nt + ti];
        if (!n_sub)
            continue;
        int np = a->snap->topics[ti].n_partitions, per = np / n_sub, extra = np % n_sub, p = 0;
        for (int mi = 0, k = 0; mi < a->n_ms; mi++) {
            if (!a->sub[mi * nt + ti])
                continue;
            int len = per + (k++ < extra ? 1 : 0);
            for (int j = 0; j < len; j++, p++) {
                a->owner[a->base[ti] + p] = mi;
                a->count[mi]++;
            }
        }
    }
}

/* Balanced (within one partition for equal subscriptions) and sticky: each member keeps up to
 * its share of its previous target, the rest goes to the least loaded subscriber. */
static void assign_uniform(asg_t *a)
{
    int nt = a->snap->n_topics, total = 0, n_subscribers = 0;
    for (int ti = 0; ti < nt; ti++) {
        bool any = false;
        for (int mi = 0; mi < a->n_ms && !any; mi++)
            any = a->sub[mi * nt + ti];
        if (any)
            total += a->snap->topics[ti].n_partitions;
    }
    for (int mi = 0; mi < a->n_ms; mi++) {
        bool any = false;
        for (int ti = 0; ti < nt && !any; ti++)
            any = a->sub[mi * nt + ti];
        n_subscribers += any;
    }
    if (!n_subscribers)
        return;
    int floor_q = total / n_subscribers, ceil_left = total % n_subscribers;
    for (int mi = 0; mi < a->n_ms; mi++) {
        cmember_t *m = a->ms[mi];
        for (int i = 0; i < m->n_target; i++) {
            int s = slot_of(a, &m->target[i]);
            if (s < 0 || a->owner[s] >= 0)
                continue;
            const meta_topic_t *t = topic_of(a, &m->target[i]);
            if (!a->sub[mi * nt + (int)(t - a->snap->topics)])
                continue;
            if (a->count[mi] >= floor_q) {
                if (a->count[mi] > floor_q || ceil_left == 0)
                    continue;
                ceil_left--;
            }
            a->owner[s] = mi;
            a->count[mi]++;
        }
    }
    for (int ti = 0; ti < nt; ti++) {
        for (int p = 0; p < a->snap->topics[ti].n_partitions; p++) {
            int s = a->base[ti] + p, best = -1;
            if (a->owner[s] >= 0)
                continue;
            for (int mi = 0; mi < a->n_ms; mi++)
                if (a->sub[mi * nt + ti] && (best < 0 || a->count[mi] < a->count[best]))
                    best = mi;
            if (best >= 0) {
                a->owner[s] = best;
                a->count[best]++;
            }
        }
    }
}

/* Recompute every member's target for the group epoch. @return 0 or ST_E_NOMEM. */
static int compute_target(grp_cgroup_t *cg, const meta_snap_t *snap)
{
    int nt = snap->n_topics, rc = ST_E_NOMEM;
    asg_t a = {.n_ms = cg->n_members, .snap = snap};
    a.ms = calloc((size_t)a.n_ms + 1, sizeof(*a.ms));
    a.sub = calloc((size_t)a.n_ms * (size_t)nt + 1, sizeof(*a.sub));
    a.base = calloc((size_t)nt + 1, sizeof(*a.base));
    a.count = calloc((size_t)a.n_ms + 1, sizeof(*a.count));
    if (!a.ms || !a.sub || !a.base || !a.count)
        goto out;
    int k = 0;
    for (cmember_t *m = cg->members; m; m = m->next)
        a.ms[k++] = m;
    qsort(a.ms, (size_t)a.n_ms, sizeof(*a.ms), member_id_cmp);
    for (int ti = 0; ti < nt; ti++) {
        a.base[ti] = a.n_slots;
        a.n_slots += snap->topics[ti].n_partitions;
        for (int mi = 0; mi < a.n_ms; mi++)
            a.sub[mi * nt + ti] = subscribes(a.ms[mi], &snap->topics[ti]);
    }
    a.owner = malloc(((size_t)a.n_slots + 1) * sizeof(*a.owner));
    if (!a.owner)
        goto out;
    for (int s = 0; s < a.n_slots; s++)
        a.owner[s] = -1;
    if (cg->assignor == GRP_ASSIGNOR_RANGE)
        assign_range(&a);
    else
        assign_uniform(&a);
    grp_tp_t **targets = calloc((size_t)a.n_ms + 1, sizeof(*targets));
    if (!targets)
        goto out;
    for (int mi = 0; mi < a.n_ms; mi++) {
        if (!(targets[mi] = malloc(((size_t)a.count[mi] + 1) * sizeof(grp_tp_t)))) {
            for (int j = 0; j < mi; j++)
                free(targets[j]);
            free(targets);
            goto out;
        }
        a.count[mi] = 0;
    }
    for (int ti = 0; ti < nt; ti++) {
        for (int p = 0; p < snap->topics[ti].n_partitions; p++) {
            int mi = a.owner[a.base[ti] + p];
            if (mi < 0)
                continue;
            grp_tp_t *tp = &targets[mi][a.count[mi]++];
            memcpy(tp->topic_id, snap->topics[ti].id, 16);
            tp->partition = p;
        }
    }
    for (int mi = 0; mi < a.n_ms; mi++) {
        free(a.ms[mi]->target);
        a.ms[mi]->target = targets[mi];
        a.ms[mi]->n_target = a.count[mi];
        qsort(targets[mi], (size_t)a.count[mi], sizeof(grp_tp_t), tp_cmp);
    }
    free(targets);
    rc = 0;
out:
    free(a.ms);
    free(a.sub);
    free(a.base);
    free(a.count);
    free(a.owner);
    return rc;
}

/* ---- Reconciliation ---- */

static bool owned_by_other(const grp_cgroup_t *cg, const cmember_t *self, const grp_tp_t *tp)
{
    for (const cmember_t *m = cg->members; m; m = m->next)
        if (m != self &&
            (tp_has(m->assigned, m->n_assigned, tp) || tp_has(m->revoking, m->n_revoking, tp)))
            return true;
    return false;
}

/* Move m towards its target (the state machine of Kafka's CurrentAssignmentBuilder): revoke
 * first, keeping the epoch; then take the target's partitions that are free, at the
 * assignment epoch. @return 0 or ST_E_NOMEM. */
static int reconcile(grp_coord_t *c, grp_cgroup_t *cg, cmember_t *m)
{
    if (m->epoch == -2 || (m->state == MS_UNREVOKED && m->n_revoking > 0))
        return 0;
    if (m->state == MS_STABLE && m->epoch == cg->assignment_epoch)
        return 0;
    size_t cap = (size_t)m->n_assigned + (size_t)m->n_target + 1;
    grp_tp_t *keep = malloc(cap * sizeof(*keep)), *rev = malloc(cap * sizeof(*rev));
    if (!keep || !rev) {
        free(keep);
        free(rev);
        return ST_E_NOMEM;
    }
    int nk = 0, nr = 0, n_new = 0, n_unreleased = 0;
    for (int i = 0; i < m->n_assigned; i++) {
        if (tp_has(m->target, m->n_target, &m->assigned[i]))
            keep[nk++] = m->assigned[i];
        else
            rev[nr++] = m->assigned[i];
    }
    if (nr == 0) {
        for (int i = 0; i < m->n_target; i++) {
            if (tp_has(m->assigned, m->n_assigned, &m->target[i]))
                continue;
            if (owned_by_other(cg, m, &m->target[i])) {
                n_unreleased++;
            } else {
                keep[nk++] = m->target[i];
                n_new++;
            }
        }
        qsort(keep, (size_t)nk, sizeof(*keep), tp_cmp);
    }
    free(m->assigned);
    m->assigned = keep;
    m->n_assigned = nk;
    if (nr) {
        free(m->revoking);
        m->revoking = rev;
        m->n_revoking = nr;
        m->state = MS_UNREVOKED;
        m->revoke_deadline = grp__now_ms(c) + m->rebalance_timeout_ms;
        return 0;
    }
    free(rev);
    if (m->epoch != cg->assignment_epoch) {
        m->prev_epoch = m->epoch;
        m->epoch = cg->assignment_epoch;
    }
    m->state = n_unreleased ? MS_UNRELEASED : MS_STABLE;
    (void)n_new;
    return 0;
}

/* ---- Heartbeat ---- */

static bool assignor_ok(const grp_coord_t *c, const char *name, int *out)
{
    int a = !strcmp(name, "uniform") ? GRP_ASSIGNOR_UNIFORM
            : !strcmp(name, "range") ? GRP_ASSIGNOR_RANGE
                                     : 0;
    for (int i = 0; a && i < c->cfg.n_cons_assignors; i++)
        if (c->cfg.cons_assignors[i] == a) {
            *out = a;
            return true;
        }
    return false;
}

static void fail(grp_chb_result_t *out, int16_t err, const char *msg)
{
    out->error_code = err;
    out->error_message = msg;
}

static int set_topics(cmember_t *m, const grp_chb_req_t *q, bool *changed)
{
    bool same = m->n_topics == q->n_topics;
    for (int i = 0; same && i < q->n_topics; i++)
        same = !strcmp(m->topics[i], q->topics[i]);
    if (same)
        return 0;
    char **t = calloc((size_t)q->n_topics + 1, sizeof(*t));
    if (!t)
        return ST_E_NOMEM;
    for (int i = 0; i < q->n_topics; i++) {
        if (!(t[i] = strdup(q->topics[i]))) {
            for (int j = 0; j < i; j++)
                free(t[j]);
            free(t);
            return ST_E_NOMEM;
        }
    }
    for (int i = 0; i < m->n_topics; i++)
        free(m->topics[i]);
    free(m->topics);
    m->topics = t;
    m->n_topics = q->n_topics;
    *changed = true;
    return 0;
}

/* Kafka's topic regexes are full matches (RE2/J); POSIX extended is close for common ones. */
static int16_t set_regex(cmember_t *m, const char *regex, bool *changed)
{
    if ((!m->regex && !regex[0]) || (m->regex && !strcmp(m->regex, regex)))
        return KP_ERR_NONE;
    if (m->regex) {
        regfree(&m->re);
        free(m->regex);
        m->regex = NULL;
    }
    *changed = true;
    if (!regex[0])
        return KP_ERR_NONE;
    /* RE2/J has no back-references, and glibc's would make matching exponential on the
     * shard's loop: refuse them as Kafka refuses what RE2/J cannot compile. */
    for (const char *p = regex; *p; p++) {
        if (*p == '\\' && p[1] >= '1' && p[1] <= '9')
            return KP_ERR_INVALID_REGULAR_EXPRESSION;
        if (*p == '\\' && p[1])
            p++;
    }
    size_t n = strlen(regex) + 5;
    char *full = malloc(n);
    if (!full)
        return KP_ERR_UNKNOWN_SERVER_ERROR;
    snprintf(full, n, "^(%s)$", regex);
    int rc = regcomp(&m->re, full, REG_EXTENDED | REG_NOSUB);
    free(full);
    if (rc)
        return KP_ERR_INVALID_REGULAR_EXPRESSION;
    if (!(m->regex = strdup(regex))) {
        regfree(&m->re);
        return KP_ERR_UNKNOWN_SERVER_ERROR;
    }
    return KP_ERR_NONE;
}

static int replace_str(char **dst, const char *src)
{
    if (!src || (*dst && !strcmp(*dst, src)))
        return 0;
    char *d = strdup(src);
    if (!d)
        return ST_E_NOMEM;
    free(*dst);
    *dst = d;
    return 0;
}

/* The group's assignor: the one most members asked for, else the configured default. */
static int group_assignor(const grp_coord_t *c, const grp_cgroup_t *cg)
{
    int votes[3] = {0, 0, 0};
    for (const cmember_t *m = cg->members; m; m = m->next)
        votes[m->assignor]++;
    if (votes[GRP_ASSIGNOR_UNIFORM] || votes[GRP_ASSIGNOR_RANGE])
        return votes[GRP_ASSIGNOR_RANGE] > votes[GRP_ASSIGNOR_UNIFORM] ? GRP_ASSIGNOR_RANGE
                                                                       : GRP_ASSIGNOR_UNIFORM;
    return c->cfg.n_cons_assignors ? c->cfg.cons_assignors[0] : GRP_ASSIGNOR_UNIFORM;
}

/* Bump the group epoch when membership, subscriptions, the subscribed topics or the assignor
 * changed, and recompute the target when it is behind. @return 0 or ST_E_NOMEM. */
static int refresh_target(grp_coord_t *c, grp_t *g, const meta_snap_t *snap, bool changed)
{
    grp_cgroup_t *cg = g->cg;
    int assignor = group_assignor(c, cg);
    uint64_t sum = meta_sum(cg, snap);
    if (changed || sum != cg->meta_sum || assignor != cg->assignor) {
        cg->group_epoch++;
        cg->meta_sum = sum;
        cg->assignor = assignor;
    }
    group_set_state(c, g);
    if (cg->group_epoch > cg->assignment_epoch) {
        if (compute_target(cg, snap))
            return ST_E_NOMEM;
        cg->assignment_epoch = cg->group_epoch;
        ST_DEBUG("grp", "group=%s consumer target assignment at epoch %d", g->id,
                 cg->assignment_epoch);
    }
    return 0;
}

static int upgrade(grp_coord_t *c, grp_t *g, const meta_snap_t *snap);

/* The group for a heartbeat, created or converted from an empty classic group. */
static grp_t *
group_for(grp_coord_t *c, const meta_snap_t *snap, const grp_chb_req_t *q, grp_chb_result_t *out)
{
    grp_t *g = grp_find(c, q->group_id);
    if (g && g->state == GRP_DEAD) {
        fail(out, KP_ERR_COORDINATOR_NOT_AVAILABLE, NULL);
        return NULL;
    }
    if (g && g->cg)
        return g;
    if (q->member_epoch != 0) {
        /* a classic group that only holds offsets may be a consumer group whose membership
         * did not survive a crash: UNKNOWN_MEMBER_ID makes its members rejoin, where Kafka's
         * GROUP_ID_NOT_FOUND would be fatal to them */
        bool classic = g && (g->state != GRP_EMPTY || g->pending);
        fail(out, classic ? KP_ERR_GROUP_ID_NOT_FOUND : KP_ERR_UNKNOWN_MEMBER_ID,
             classic ? "the group is not a consumer group" : NULL);
        return NULL;
    }
    if (g && (g->state != GRP_EMPTY || g->pending)) {
        /* online upgrade: only a group of the embedded consumer protocol converts */
        if (strcmp(g->protocol_type, "consumer") != 0) {
            fail(out, KP_ERR_GROUP_ID_NOT_FOUND, "the group is not a consumer group");
            return NULL;
        }
        if (upgrade(c, g, snap)) {
            fail(out, KP_ERR_UNKNOWN_SERVER_ERROR, NULL);
            return NULL;
        }
        return g;
    }
    if (!g && !(g = grp__group_new(c, q->group_id))) {
        fail(out, KP_ERR_UNKNOWN_SERVER_ERROR, NULL);
        return NULL;
    }
    char *pt = strdup("consumer");
    grp_cgroup_t *cg = calloc(1, sizeof(*cg));
    if (!pt || !cg) {
        free(pt);
        free(cg);
        fail(out, KP_ERR_UNKNOWN_SERVER_ERROR, NULL);
        return NULL;
    }
    free(g->protocol_type);
    g->protocol_type = pt;
    free(g->protocol_name);
    g->protocol_name = NULL;
    g->cg = cg;
    return g;
}

static bool owned_within(const cmember_t *m, const grp_chb_req_t *q)
{
    for (int i = 0; i < q->n_owned; i++)
        if (!tp_has(m->assigned, m->n_assigned, &q->owned[i]))
            return false;
    return true;
}

static cmember_t *member_new(grp_cgroup_t *cg, const grp_chb_req_t *q)
{
    cmember_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->member_id = q->member_id[0] ? strdup(q->member_id) : grp__new_member_id("consumer");
    if (!m->member_id || !(m->client_id = strdup("")) || !(m->client_host = strdup(""))) {
        member_free(m);
        return NULL;
    }
    m->rebalance_timeout_ms = 300000;
    m->next = cg->members;
    cg->members = m;
    cg->n_members++;
    return m;
}

/* The member a heartbeat is about: known, joining, or a static member coming back.
 * *joined is set when the group's membership changed. */
static cmember_t *member_for(grp_t *g, const grp_chb_req_t *q, grp_chb_result_t *out, bool *joined)
{
    grp_cgroup_t *cg = g->cg;
    cmember_t *m = q->member_id[0] ? member_find(cg, q->member_id) : NULL;
    if (q->member_epoch != 0) {
        if (!m || m->classic) {
            fail(out, KP_ERR_UNKNOWN_MEMBER_ID, NULL);
            return NULL;
        }
        if (q->member_epoch > m->epoch) {
            fail(out, KP_ERR_FENCED_MEMBER_EPOCH, "the member epoch is ahead of the group's");
            return NULL;
        }
        if (q->member_epoch < m->epoch &&
            !(q->member_epoch == m->prev_epoch && q->n_owned >= 0 && owned_within(m, q))) {
            fail(out, KP_ERR_FENCED_MEMBER_EPOCH, "the member epoch is stale");
            return NULL;
        }
        return m;
    }
    /* Joining (epoch 0). */
    if (q->n_topics < 0 && !q->regex) {
        fail(out, KP_ERR_INVALID_REQUEST, "SubscribedTopicNames must be set when joining");
        return NULL;
    }
    cmember_t *st = q->instance_id ? member_by_instance(cg, q->instance_id) : NULL;
    if (st && st != m) {
        if (st->epoch != -2) {
            fail(out, KP_ERR_UNRELEASED_INSTANCE_ID, "the static member is still active");
            return NULL;
        }
        /* The static member comes back under a new member id: it keeps its assignment and
         * its previous epoch. */
        if (m) { /* the id is another member's: taking it over would make two of one */
            fail(out, KP_ERR_INVALID_REQUEST, "the member id belongs to another member");
            return NULL;
        }
        char *id = q->member_id[0] ? strdup(q->member_id) : grp__new_member_id("consumer");
        if (!id) {
            fail(out, KP_ERR_UNKNOWN_SERVER_ERROR, NULL);
            return NULL;
        }
        free(st->member_id);
        st->member_id = id;
        st->epoch = st->prev_epoch;
        return st;
    }
    if (m) { /* rejoining (a classic member now speaking this protocol): it gave up what it owned */
        m->classic = false;
        m->n_assigned = m->n_revoking = 0;
        m->state = MS_STABLE;
        m->prev_epoch = m->epoch = 0;
        return m;
    }
    if (!(m = member_new(cg, q))) {
        fail(out, KP_ERR_UNKNOWN_SERVER_ERROR, NULL);
        return NULL;
    }
    *joined = true;
    return m;
}

/* The member owns none of the partitions it was revoking any more: they are free for their
 * next owners. n_owned < 0: the member did not say. @return whether they were released. */
static bool release_revoked(cmember_t *m, const grp_tp_t *owned, int n_owned)
{
    if (n_owned < 0 || m->state != MS_UNREVOKED || !m->n_revoking)
        return false;
    for (int i = 0; i < n_owned; i++)
        if (tp_has(m->revoking, m->n_revoking, &owned[i]))
            return false;
    m->n_revoking = 0;
    return true;
}

static int16_t member_update(grp_coord_t *c, cmember_t *m, const grp_chb_req_t *q, bool *changed)
{
    int assignor = 0;
    if (q->assignor && q->assignor[0] && !assignor_ok(c, q->assignor, &assignor))
        return KP_ERR_UNSUPPORTED_ASSIGNOR;
    if (q->assignor && assignor != m->assignor) {
        m->assignor = assignor;
        *changed = true;
    }
    if (q->n_topics >= 0 && set_topics(m, q, changed))
        return KP_ERR_UNKNOWN_SERVER_ERROR;
    if (q->regex) {
        int16_t err = set_regex(m, q->regex, changed);
        if (err)
            return err;
    }
    if (q->rebalance_timeout_ms > 0)
        m->rebalance_timeout_ms = q->rebalance_timeout_ms;
    /* the instance id is checked for uniqueness only when joining (member_for) */
    if ((q->member_epoch == 0 && replace_str(&m->instance_id, q->instance_id)) ||
        replace_str(&m->rack_id, q->rack_id) || replace_str(&m->client_id, q->client_id) ||
        replace_str(&m->client_host, q->client_host))
        return KP_ERR_UNKNOWN_SERVER_ERROR;
    m->session_deadline = grp__now_ms(c) + c->cfg.cons_session_timeout_ms;
    release_revoked(m, q->owned, q->n_owned);
    return KP_ERR_NONE;
}

static void consumer_heartbeat(grp_coord_t *c,
                               const meta_snap_t *snap,
                               const grp_chb_req_t *q,
                               grp_chb_result_t *out)
{
    memset(out, 0, sizeof(*out));
    out->member_id = q->member_id;
    out->member_epoch = q->member_epoch;
    out->heartbeat_interval_ms = c->cfg.cons_heartbeat_interval_ms;
    if (!q->group_id[0]) {
        fail(out, KP_ERR_INVALID_GROUP_ID, NULL);
        return;
    }
    if (q->member_epoch < -2 || (q->member_epoch != 0 && !q->member_id[0])) {
        fail(out, KP_ERR_INVALID_REQUEST, "MemberId can't be empty");
        return;
    }
    int dummy;
    if (q->assignor && q->assignor[0] && !assignor_ok(c, q->assignor, &dummy)) {
        fail(out, KP_ERR_UNSUPPORTED_ASSIGNOR, "the assignor is not in group.consumer.assignors");
        return;
    }
    grp_t *g = group_for(c, snap, q, out);
    if (!g)
        return;
    grp_cgroup_t *cg = g->cg;
    if (q->member_epoch < 0) { /* leaving: -1 for good, -2 a static member for now */
        cmember_t *m = member_find(cg, q->member_id);
        if (!m) {
            fail(out, KP_ERR_UNKNOWN_MEMBER_ID, NULL);
            return;
        }
        if (q->member_epoch == -2 && m->instance_id) {
            if (m->epoch != -2)
                m->prev_epoch = m->epoch;
            m->epoch = -2;
            m->session_deadline = grp__now_ms(c) + c->cfg.cons_session_timeout_ms;
        } else {
            member_remove(c, g, m, "left");
            maybe_downgrade(c, g);
        }
        return;
    }
    bool changed = false;
    cmember_t *m = member_for(g, q, out, &changed);
    if (!m) {
        if (!cg->n_members && g->state == GRP_EMPTY && !g->n_offsets && !cg->group_epoch) {
            /* a group created for a failed join: leave nothing behind */
            grp__cons_free(cg);
            g->cg = NULL;
        }
        return;
    }
    bool was_join = q->member_epoch == 0;
    int16_t err = member_update(c, m, q, &changed);
    if (err) {
        if (changed && was_join && m->epoch == 0)
            member_remove(c, g, m, "failed to join");
        fail(out, err,
             err == KP_ERR_INVALID_REGULAR_EXPRESSION ? "invalid regular expression" : NULL);
        return;
    }
    if (refresh_target(c, g, snap, changed)) {
        fail(out, KP_ERR_UNKNOWN_SERVER_ERROR, NULL);
        return;
    }
    /* Members waiting for partitions held by others are moved on their own heartbeats. */
    grp_tp_t *before = NULL;
    int n_before = m->n_assigned;
    if (n_before && !(before = malloc((size_t)n_before * sizeof(*before)))) {
        fail(out, KP_ERR_UNKNOWN_SERVER_ERROR, NULL);
        return;
    }
    if (n_before)
        memcpy(before, m->assigned, (size_t)n_before * sizeof(*before));
    if (reconcile(c, cg, m)) {
        free(before);
        fail(out, KP_ERR_UNKNOWN_SERVER_ERROR, NULL);
        return;
    }
    bool moved = !tp_set_eq(before, n_before, m->assigned, m->n_assigned);
    free(before);
    out->member_id = m->member_id;
    out->member_epoch = m->epoch;
    if (was_join || moved || q->n_owned >= 0) {
        out->has_assignment = true;
        out->assignment = m->assigned;
        out->n_assignment = m->n_assigned;
    }
}

/* ---- Classic members (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) in a consumer group ---- */

/* A ConsumerProtocolSubscription (JoinGroup metadata) as topic names and owned partitions
 * (those of topics unknown to snap left out), allocated in a. @return false when malformed. */
static bool parse_subscription(
    const uint8_t *md, int32_t len, const meta_snap_t *snap, kp_arena_t *a, grp_chb_req_t *out)
{
    kp_reader_t r;
    kp_reader_init(&r, md, (size_t)(len > 0 ? len : 0));
    int16_t v = kp_read_i16(&r);
    kp_consumer_protocol_subscription_t sub;
    if (v < 0 || kp_consumer_protocol_subscription_decode(&r, v > 3 ? 3 : v, &sub, a) != 0)
        return false;
    int nt = sub.n_topics > 0 ? sub.n_topics : 0, np = 0;
    const char **topics = kp_arena_calloc(a, (size_t)nt + 1, sizeof(*topics));
    for (int i = 0; i < sub.n_owned_partitions; i++)
        np += sub.owned_partitions[i].n_partitions > 0 ? sub.owned_partitions[i].n_partitions : 0;
    grp_tp_t *owned = kp_arena_calloc(a, (size_t)np + 1, sizeof(*owned));
    if (!topics || !owned)
        return false;
    for (int i = 0; i < nt; i++) {
        char *t = kp_arena_alloc(a, (size_t)sub.topics[i].len + 1);
        if (!t || sub.topics[i].len < 0)
            return false;
        memcpy(t, sub.topics[i].ptr, (size_t)sub.topics[i].len);
        topics[i] = t;
    }
    int k = 0;
    for (int i = 0; i < sub.n_owned_partitions; i++) {
        const kp_consumer_protocol_subscription_topic_partition_t *o = &sub.owned_partitions[i];
        const meta_topic_t *t =
            o->topic.len > 0 ? meta_snap_find(snap, o->topic.ptr, (size_t)o->topic.len) : NULL;
        for (int j = 0; t && j < o->n_partitions; j++) {
            memcpy(owned[k].topic_id, t->id, 16);
            owned[k++].partition = o->partitions[j];
        }
    }
    out->topics = topics;
    out->n_topics = nt;
    out->owned = owned;
    out->n_owned = k; /* none listed (eager, or subscription v0): it owns nothing now */
    return true;
}

/* A classic member's last assignment (ConsumerProtocolAssignment) as a sorted partition set
 * (malloc'd); partitions of topics unknown to snap are left out. @return false when malformed
 * or out of memory. */
static bool
parse_assignment(const uint8_t *p, int32_t len, const meta_snap_t *snap, grp_tp_t **out, int *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (len <= 0)
        return true;
    kp_arena_t a;
    kp_arena_init(&a, 1u << 20);
    kp_reader_t r;
    kp_reader_init(&r, p, (size_t)len);
    int16_t v = kp_read_i16(&r);
    kp_consumer_protocol_assignment_t as;
    bool ok = v >= 0 && kp_consumer_protocol_assignment_decode(&r, v > 3 ? 3 : v, &as, &a) == 0;
    int n = 0;
    for (int i = 0; ok && i < as.n_assigned_partitions; i++)
        n +=
            as.assigned_partitions[i].n_partitions > 0 ? as.assigned_partitions[i].n_partitions : 0;
    grp_tp_t *tps = ok ? malloc(((size_t)n + 1) * sizeof(*tps)) : NULL;
    int k = 0;
    for (int i = 0; tps && i < as.n_assigned_partitions; i++) {
        const kp_consumer_protocol_assignment_topic_partition_t *t = &as.assigned_partitions[i];
        const meta_topic_t *mt =
            t->topic.len > 0 ? meta_snap_find(snap, t->topic.ptr, (size_t)t->topic.len) : NULL;
        for (int j = 0; mt && j < t->n_partitions; j++) {
            memcpy(tps[k].topic_id, mt->id, 16);
            tps[k].partition = t->partitions[j];
            if (!tp_has(tps, k, &tps[k])) {
                k++;
                qsort(tps, (size_t)k, sizeof(*tps), tp_cmp);
            }
        }
    }
    kp_arena_fini(&a);
    if (!tps)
        return false;
    *out = tps;
    *n_out = k;
    return true;
}

/* The assignment of a classic member's SyncGroup: ConsumerProtocolAssignment v0 naming the
 * topics of snap (partitions of deleted topics left out). */
static void write_assignment(kp_writer_t *w, const meta_snap_t *snap, const grp_tp_t *tps, int n)
{
    kp_arena_t a;
    kp_arena_init(&a, 64u << 20);
    kp_consumer_protocol_assignment_t as;
    kp_consumer_protocol_assignment_init(&as);
    kp_consumer_protocol_assignment_topic_partition_t *ts =
        kp_arena_calloc(&a, (size_t)n + 1, sizeof(*ts));
    int32_t *parts = kp_arena_calloc(&a, (size_t)n + 1, sizeof(*parts));
    if (!ts || !parts) {
        kp_writer_fail(w, ST_E_NOMEM);
        kp_arena_fini(&a);
        return;
    }
    int k = -1;
    const meta_topic_t *mt = NULL;
    for (int i = 0; i < n; i++) {
        if (i == 0 || memcmp(tps[i].topic_id, tps[i - 1].topic_id, 16)) {
            if ((mt = meta_snap_find_id(snap, tps[i].topic_id))) {
                k++;
                kp_consumer_protocol_assignment_topic_partition_init(&ts[k]);
                ts[k].topic = kp_str_from_cstr(mt->name);
                ts[k].partitions = &parts[i];
                ts[k].n_partitions = 0;
            }
        }
        if (mt) {
            parts[i] = tps[i].partition;
            ts[k].n_partitions++;
        }
    }
    as.assigned_partitions = ts;
    as.n_assigned_partitions = k + 1;
    kp_write_i16(w, 0);
    if (kp_consumer_protocol_assignment_encode(w, 0, &as) != 0)
        kp_writer_fail(w, ST_E_INVAL);
    kp_arena_fini(&a);
}

static const grp_protocol_t *classic_protocol(const grp_member_t *m, const char *name)
{
    for (int i = 0; name && i < m->n_protocols; i++)
        if (!strcmp(m->protocols[i].name, name))
            return &m->protocols[i];
    return m->n_protocols ? &m->protocols[0] : NULL;
}

/* Online upgrade: a classic "consumer" group with members becomes a consumer group when a
 * consumer-protocol member joins it. Each classic member keeps its subscription and its
 * assigned partitions (its target until the next epoch) at member epoch = the generation;
 * waiting JoinGroup/SyncGroup calls get REBALANCE_IN_PROGRESS. @return 0 or ST_E_NOMEM
 * (then nothing changed). */
static int upgrade(grp_coord_t *c, grp_t *g, const meta_snap_t *snap)
{
    grp_cgroup_t *cg = calloc(1, sizeof(*cg));
    if (!cg)
        return ST_E_NOMEM;
    cmember_t **tail = &cg->members;
    int64_t now = grp__now_ms(c);
    for (grp_member_t *gm = g->members; gm; gm = gm->next) {
        cmember_t *m = calloc(1, sizeof(*m));
        if (!m)
            goto nomem;
        *tail = m;
        tail = &m->next;
        cg->n_members++;
        m->member_id = strdup(gm->member_id);
        m->instance_id = gm->instance_id ? strdup(gm->instance_id) : NULL;
        m->client_id = strdup(gm->client_id ? gm->client_id : "");
        m->client_host = strdup(gm->client_host ? gm->client_host : "");
        m->protocols = grp__protocols_dup(gm->protocols, gm->n_protocols);
        if (!m->member_id || (gm->instance_id && !m->instance_id) || !m->client_id ||
            !m->client_host || !m->protocols)
            goto nomem;
        m->n_protocols = gm->n_protocols;
        m->classic = true;
        m->session_timeout_ms = gm->session_timeout_ms;
        m->rebalance_timeout_ms = gm->rebalance_timeout_ms;
        m->epoch = m->prev_epoch = g->generation;
        m->state = MS_STABLE;
        m->session_deadline = now + gm->session_timeout_ms;
        const grp_protocol_t *p = classic_protocol(gm, g->protocol_name);
        kp_arena_t a;
        kp_arena_init(&a, 1u << 20);
        grp_chb_req_t sub = {.n_topics = 0};
        bool changed = false;
        int rc = p && parse_subscription(p->metadata, p->metadata_len, snap, &a, &sub)
                     ? set_topics(m, &sub, &changed)
                     : 0; /* an unreadable subscription: it subscribes to nothing */
        kp_arena_fini(&a);
        if (rc || !parse_assignment(gm->assignment, gm->assignment_len, snap, &m->assigned,
                                    &m->n_assigned))
            goto nomem;
        if (!(m->target = malloc(((size_t)m->n_assigned + 1) * sizeof(grp_tp_t))))
            goto nomem;
        if (m->n_assigned)
            memcpy(m->target, m->assigned, (size_t)m->n_assigned * sizeof(grp_tp_t));
        m->n_target = m->n_assigned;
    }
    for (grp_member_t *gm = g->members, *next; gm; gm = next) {
        next = gm->next;
        grp__member_fail_waiters(gm, KP_ERR_REBALANCE_IN_PROGRESS);
        grp__member_free(gm);
    }
    for (grp_pending_t *p = g->pending, *next; p; p = next) {
        next = p->next;
        free(p->member_id);
        free(p);
    }
    g->members = NULL;
    g->pending = NULL;
    g->n_members = 0;
    free(g->leader_id);
    g->leader_id = NULL;
    free(g->protocol_name);
    g->protocol_name = NULL;
    g->initial_delay = false;
    cg->group_epoch = cg->assignment_epoch = g->generation;
    g->cg = cg;
    cg->assignor = group_assignor(c, cg);
    cg->meta_sum = meta_sum(cg, snap);
    group_set_state(c, g);
    ST_INFO("grp", "group=%s upgraded from the classic protocol at generation %d, %d members",
            g->id, g->generation, cg->n_members);
    return 0;
nomem:
    grp__cons_free(cg);
    return ST_E_NOMEM;
}

/* Online downgrade: when only classic members are left, the group becomes classic again and
 * rebalances (at generation = their highest member epoch, so their heartbeats are told
 * REBALANCE_IN_PROGRESS). Out of memory: it stays a consumer group, which serves them too. */
static void maybe_downgrade(grp_coord_t *c, grp_t *g)
{
    grp_cgroup_t *cg = g->cg;
    if (!cg || !cg->members || g->state == GRP_DEAD)
        return;
    for (const cmember_t *m = cg->members; m; m = m->next)
        if (!m->classic)
            return;
    grp_member_t *head = NULL, **tail = &head;
    for (const cmember_t *m = cg->members; m; m = m->next) {
        grp_member_t *gm = calloc(1, sizeof(*gm));
        if (!gm || !(gm->protocol_type = strdup("consumer"))) {
            free(gm);
            for (grp_member_t *x = head, *next; x; x = next) {
                next = x->next;
                grp__member_free(x);
            }
            return;
        }
        *tail = gm;
        tail = &gm->next;
    }
    int64_t now = grp__now_ms(c);
    int32_t gen = 0;
    int n = 0;
    grp_member_t *gm = head;
    for (cmember_t *m = cg->members; m; m = m->next, gm = gm->next, n++) {
        gm->member_id = m->member_id;
        gm->instance_id = m->instance_id;
        gm->client_id = m->client_id;
        gm->client_host = m->client_host;
        gm->protocols = m->protocols;
        gm->n_protocols = m->n_protocols;
        m->member_id = m->instance_id = m->client_id = m->client_host = NULL;
        m->protocols = NULL;
        m->n_protocols = 0;
        gm->session_timeout_ms = m->session_timeout_ms;
        gm->rebalance_timeout_ms = m->rebalance_timeout_ms;
        gm->hb_deadline = now + m->session_timeout_ms;
        gen = m->epoch > gen ? m->epoch : gen;
    }
    if (cg->saved && c->cfg.on_cons_state)
        c->cfg.on_cons_state(c->cfg.cons_state_arg, g->id, NULL, 0);
    grp__cons_free(cg);
    g->cg = NULL;
    g->members = head;
    g->n_members = n;
    g->generation = gen;
    free(g->protocol_name);
    g->protocol_name = NULL;
    free(g->leader_id);
    g->leader_id = NULL;
    g->state = GRP_STABLE;
    ST_INFO("grp", "group=%s downgraded to the classic protocol at generation %d, %d members",
            g->id, gen, n);
    grp__prepare_rebalance(c, g);
}

static void join_answer(grp_join_cb cb, void *arg, int16_t err, const char *member_id)
{
    grp_join_result_t r = {.error_code = err, .generation_id = -1, .member_id = member_id};
    cb(arg, &r);
}

/* A classic member's JoinGroup: joins or updates the member from its subscription, releases
 * what it no longer owns, and reconciles it at once (no join phase): the generation is its
 * member epoch, there is no leader, SyncGroup carries its assignment. */
static void
classic_join(grp_coord_t *c, grp_t *g, const grp_join_req_t *q, grp_join_cb cb, void *arg)
{
    grp_cgroup_t *cg = g->cg;
    if (!q->snap) {
        join_answer(cb, arg, KP_ERR_COORDINATOR_NOT_AVAILABLE, q->member_id);
        return;
    }
    if (strcmp(q->protocol_type, "consumer") != 0) {
        join_answer(cb, arg, KP_ERR_INCONSISTENT_GROUP_PROTOCOL, q->member_id);
        return;
    }
    cmember_t *m = NULL;
    if (q->instance_id && (m = member_by_instance(cg, q->instance_id))) {
        if (q->member_id[0] && strcmp(m->member_id, q->member_id) != 0) {
            join_answer(cb, arg, KP_ERR_FENCED_INSTANCE_ID, q->member_id);
            return;
        }
        if (!m->classic) {
            join_answer(cb, arg, KP_ERR_UNRELEASED_INSTANCE_ID, q->member_id);
            return;
        }
        if (!q->member_id[0]) { /* a static member restarted: a new id fences the old one */
            char *id = grp__new_member_id(q->instance_id);
            if (!id) {
                join_answer(cb, arg, KP_ERR_UNKNOWN_SERVER_ERROR, q->member_id);
                return;
            }
            free(m->member_id);
            m->member_id = id;
        }
    } else if (q->member_id[0] && (m = member_find(cg, q->member_id)) && !m->classic) {
        join_answer(cb, arg, KP_ERR_UNKNOWN_MEMBER_ID, q->member_id);
        return;
    }
    kp_arena_t a;
    kp_arena_init(&a, 1u << 20);
    grp_chb_req_t sub = {.n_topics = 0};
    if (!parse_subscription(q->protocols[0].metadata, q->protocols[0].metadata_len, q->snap, &a,
                            &sub)) {
        kp_arena_fini(&a);
        join_answer(cb, arg, KP_ERR_INCONSISTENT_GROUP_PROTOCOL, q->member_id);
        return;
    }
    bool changed = false;
    int16_t err = KP_ERR_NONE;
    if (!m) {
        const char *prefix = q->instance_id                    ? q->instance_id
                             : q->client_id && q->client_id[0] ? q->client_id
                                                               : "member";
        char *id = q->member_id[0] ? strdup(q->member_id) : grp__new_member_id(prefix);
        if (id && !q->member_id[0] && q->require_known_member_id && !q->instance_id) {
            kp_arena_fini(&a);
            join_answer(cb, arg, KP_ERR_MEMBER_ID_REQUIRED, id);
            free(id);
            return;
        }
        grp_chb_req_t nq = {.member_id = id ? id : ""};
        if (!id || !(m = member_new(cg, &nq))) {
            free(id);
            kp_arena_fini(&a);
            join_answer(cb, arg, KP_ERR_UNKNOWN_SERVER_ERROR, q->member_id);
            return;
        }
        free(id);
        m->classic = true;
        changed = true;
    }
    grp_protocol_t *ps = grp__protocols_dup(q->protocols, q->n_protocols);
    if (!ps || set_topics(m, &sub, &changed) ||
        (q->instance_id && replace_str(&m->instance_id, q->instance_id)) ||
        replace_str(&m->client_id, q->client_id ? q->client_id : "") ||
        replace_str(&m->client_host, q->client_host ? q->client_host : "")) {
        if (ps)
            grp__protocols_free(ps, q->n_protocols);
        err = KP_ERR_UNKNOWN_SERVER_ERROR;
    } else {
        grp__protocols_free(m->protocols, m->n_protocols);
        m->protocols = ps;
        m->n_protocols = q->n_protocols;
        if (m->assignor) { /* classic members ask for no server assignor */
            m->assignor = 0;
            changed = true;
        }
        m->session_timeout_ms = q->session_timeout_ms;
        m->rebalance_timeout_ms = q->rebalance_timeout_ms;
        m->session_deadline = grp__now_ms(c) + q->session_timeout_ms;
        release_revoked(m, sub.owned, sub.n_owned);
        if (refresh_target(c, g, q->snap, changed) || reconcile(c, cg, m) ||
            (release_revoked(m, sub.owned, sub.n_owned) && reconcile(c, cg, m)))
            err = KP_ERR_UNKNOWN_SERVER_ERROR;
    }
    kp_arena_fini(&a);
    if (err) {
        join_answer(cb, arg, err, q->member_id);
        return;
    }
    ST_DEBUG("grp",
             "group=%s classic member=%s joined the consumer group at epoch %d (%d partitions)",
             g->id, m->member_id, m->epoch, m->n_assigned);
    grp_join_result_t r = {
        .error_code = KP_ERR_NONE,
        .generation_id = m->epoch,
        .protocol_type = "consumer",
        .protocol_name = m->protocols[0].name,
        .member_id = m->member_id,
    };
    cb(arg, &r);
}

static int16_t classic_member(const grp_t *g,
                              const char *member_id,
                              const char *instance_id,
                              int32_t generation_id,
                              cmember_t **out)
{
    cmember_t *m = member_id ? member_find(g->cg, member_id) : NULL;
    if (!m && instance_id && member_by_instance(g->cg, instance_id))
        return KP_ERR_FENCED_INSTANCE_ID;
    if (!m || !m->classic)
        return KP_ERR_UNKNOWN_MEMBER_ID;
    if (instance_id && (!m->instance_id || strcmp(m->instance_id, instance_id) != 0))
        return KP_ERR_FENCED_INSTANCE_ID;
    if (generation_id != m->epoch)
        return KP_ERR_ILLEGAL_GENERATION;
    *out = m;
    return KP_ERR_NONE;
}

/* A classic member's SyncGroup: its assigned partitions (never the ones it still revokes). */
void grp__cons_sync(grp_coord_t *c, grp_t *g, const grp_sync_req_t *q, grp_sync_cb cb, void *arg)
{
    cmember_t *m = NULL;
    int16_t err = classic_member(g, q->member_id, q->instance_id, q->generation_id, &m);
    if (!err && ((q->protocol_type && strcmp(q->protocol_type, "consumer") != 0) ||
                 (q->protocol_name && strcmp(q->protocol_name, m->protocols[0].name) != 0)))
        err = KP_ERR_INCONSISTENT_GROUP_PROTOCOL;
    if (!err && !q->snap)
        err = KP_ERR_COORDINATOR_NOT_AVAILABLE;
    if (err) {
        grp_sync_result_t r = {.error_code = err};
        cb(arg, &r);
        return;
    }
    m->session_deadline = grp__now_ms(c) + m->session_timeout_ms;
    kp_writer_t w;
    kp_writer_init(&w, 0);
    write_assignment(&w, q->snap, m->assigned, m->n_assigned);
    grp_sync_result_t r = {KP_ERR_NONE, "consumer", m->protocols[0].name, w.buf, (int32_t)w.len};
    if (!kp_writer_ok(&w))
        r = (grp_sync_result_t){.error_code = KP_ERR_UNKNOWN_SERVER_ERROR};
    cb(arg, &r);
    kp_writer_fini(&w);
}

/* Are partitions m waits for free now? */
static bool unreleased_free(const grp_cgroup_t *cg, const cmember_t *m)
{
    for (int i = 0; i < m->n_target; i++)
        if (!tp_has(m->assigned, m->n_assigned, &m->target[i]) &&
            !owned_by_other(cg, m, &m->target[i]))
            return true;
    return false;
}

/* A classic member's Heartbeat: REBALANCE_IN_PROGRESS when it should rejoin to catch up with
 * the group epoch, to revoke, or to take partitions that were released to it. */
int16_t grp__cons_heartbeat(
    grp_coord_t *c, grp_t *g, int32_t generation_id, const char *member_id, const char *instance_id)
{
    cmember_t *m = NULL;
    int16_t err = classic_member(g, member_id, instance_id, generation_id, &m);
    if (err)
        return err;
    m->session_deadline = grp__now_ms(c) + m->session_timeout_ms;
    if (m->epoch < g->cg->group_epoch || (m->state == MS_UNREVOKED && m->n_revoking) ||
        (m->state == MS_UNRELEASED && unreleased_free(g->cg, m)))
        return KP_ERR_REBALANCE_IN_PROGRESS;
    return KP_ERR_NONE;
}

int16_t grp__cons_leave(grp_coord_t *c, grp_t *g, const char *member_id, const char *instance_id)
{
    cmember_t *m = instance_id ? member_by_instance(g->cg, instance_id)
                               : member_find(g->cg, member_id ? member_id : "");
    if (!m || !m->classic)
        return KP_ERR_UNKNOWN_MEMBER_ID;
    if (instance_id && member_id && member_id[0] && strcmp(member_id, m->member_id) != 0)
        return KP_ERR_FENCED_INSTANCE_ID;
    member_remove(c, g, m, "left (LeaveGroup)");
    maybe_downgrade(c, g);
    persist(c, g);
    return KP_ERR_NONE;
}

/* ---- Durable state (cfg.on_cons_state / grp_cons_restore) ---- */

#define STATE_VERSION 1

static void write_cstr(kp_writer_t *w, const char *s)
{
    kp_write_str(w, s ? kp_str_from_cstr(s) : KP_STR_NULL);
}

static void write_tps(kp_writer_t *w, const grp_tp_t *tps, int n)
{
    kp_write_i32(w, n);
    for (int i = 0; i < n; i++) {
        kp_write_raw(w, tps[i].topic_id, 16);
        kp_write_i32(w, tps[i].partition);
    }
}

/* Everything but the timers (sessions restart at load). */
static void write_state(kp_writer_t *w, const grp_cgroup_t *cg)
{
    kp_write_i16(w, STATE_VERSION);
    kp_write_i32(w, cg->group_epoch);
    kp_write_i32(w, cg->assignment_epoch);
    kp_write_i8(w, (int8_t)cg->assignor);
    kp_write_i64(w, (int64_t)cg->meta_sum);
    kp_write_i32(w, cg->n_members);
    for (const cmember_t *m = cg->members; m; m = m->next) {
        write_cstr(w, m->member_id);
        write_cstr(w, m->instance_id);
        write_cstr(w, m->rack_id);
        write_cstr(w, m->client_id);
        write_cstr(w, m->client_host);
        kp_write_i32(w, m->epoch);
        kp_write_i32(w, m->prev_epoch);
        kp_write_i8(w, (int8_t)m->state);
        kp_write_i32(w, m->rebalance_timeout_ms);
        kp_write_i8(w, (int8_t)m->assignor);
        kp_write_i32(w, m->n_topics);
        for (int i = 0; i < m->n_topics; i++)
            write_cstr(w, m->topics[i]);
        write_cstr(w, m->regex);
        write_tps(w, m->assigned, m->n_assigned);
        write_tps(w, m->revoking, m->n_revoking);
        write_tps(w, m->target, m->n_target);
        kp_write_bool(w, m->classic);
        kp_write_i32(w, m->session_timeout_ms);
        kp_write_i32(w, m->n_protocols);
        for (int i = 0; i < m->n_protocols; i++) {
            write_cstr(w, m->protocols[i].name);
            kp_write_bytes(w, (kp_bytes_t){m->protocols[i].metadata, m->protocols[i].metadata_len});
        }
    }
}

static uint64_t state_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Hand g's state to cfg.on_cons_state when it changed since the last time. */
static void persist(grp_coord_t *c, grp_t *g)
{
    grp_cgroup_t *cg = g->cg;
    if (!c->cfg.on_cons_state || !cg || g->state == GRP_DEAD)
        return;
    if (!cg->n_members) { /* an empty group has nothing to keep */
        if (cg->saved)
            c->cfg.on_cons_state(c->cfg.cons_state_arg, g->id, NULL, 0);
        cg->saved = false;
        return;
    }
    kp_writer_t w;
    kp_writer_init(&w, 0);
    write_state(&w, cg);
    if (kp_writer_ok(&w)) {
        uint64_t h = state_hash(w.buf, w.len);
        if (!cg->saved || h != cg->saved_hash) {
            c->cfg.on_cons_state(c->cfg.cons_state_arg, g->id, w.buf, w.len);
            cg->saved = true;
            cg->saved_hash = h;
        }
    } else {
        ST_WARN("grp", "group=%s: out of memory saving the consumer group state", g->id);
    }
    kp_writer_fini(&w);
}

void grp_consumer_heartbeat(grp_coord_t *c,
                            const meta_snap_t *snap,
                            const grp_chb_req_t *q,
                            grp_chb_result_t *out)
{
    consumer_heartbeat(c, snap, q, out);
    grp_t *g = q->group_id[0] ? grp_find(c, q->group_id) : NULL;
    if (g) /* out's pointers stay valid: persisting changes nothing */
        persist(c, g);
}

void grp__cons_join(grp_coord_t *c, grp_t *g, const grp_join_req_t *q, grp_join_cb cb, void *arg)
{
    classic_join(c, g, q, cb, arg);
    persist(c, g);
}

/* An owned C string of the reader (NULL for a null string); *ok cleared on failure. */
static char *read_cstr(kp_reader_t *r, bool nullable, bool *ok)
{
    kp_str_t s = kp_read_str(r);
    if (!kp_reader_ok(r) || (s.len < 0 && !nullable)) {
        *ok = false;
        return NULL;
    }
    if (s.len < 0)
        return NULL;
    char *d = malloc((size_t)s.len + 1);
    if (!d) {
        *ok = false;
        return NULL;
    }
    memcpy(d, s.ptr, (size_t)s.len);
    d[s.len] = 0;
    return d;
}

static grp_tp_t *read_tps(kp_reader_t *r, int *n, bool *ok)
{
    int32_t k = kp_read_i32(r);
    if (!kp_reader_ok(r) || k < 0 || (size_t)k > kp_reader_remaining(r) / 20) {
        *ok = false;
        return NULL;
    }
    grp_tp_t *tps = malloc(((size_t)k + 1) * sizeof(*tps));
    if (!tps) {
        *ok = false;
        return NULL;
    }
    for (int i = 0; i < k; i++) {
        kp_uuid_t id = kp_read_uuid(r);
        memcpy(tps[i].topic_id, id.b, 16);
        tps[i].partition = kp_read_i32(r);
    }
    qsort(tps, (size_t)k, sizeof(*tps), tp_cmp);
    *n = k;
    return tps;
}

static cmember_t *read_member(grp_coord_t *c, kp_reader_t *r, int64_t now)
{
    cmember_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    bool ok = true;
    m->member_id = read_cstr(r, false, &ok);
    m->instance_id = read_cstr(r, true, &ok);
    m->rack_id = read_cstr(r, true, &ok);
    m->client_id = read_cstr(r, false, &ok);
    m->client_host = read_cstr(r, false, &ok);
    m->epoch = kp_read_i32(r);
    m->prev_epoch = kp_read_i32(r);
    m->state = kp_read_i8(r);
    m->rebalance_timeout_ms = kp_read_i32(r);
    m->assignor = kp_read_i8(r);
    int32_t nt = kp_read_i32(r);
    if (!ok || !kp_reader_ok(r) || nt < 0 || (size_t)nt > kp_reader_remaining(r) / 2 ||
        m->state < MS_STABLE || m->state > MS_UNRELEASED || m->assignor < 0 ||
        m->assignor > GRP_ASSIGNOR_RANGE || !(m->topics = calloc((size_t)nt + 1, sizeof(char *))))
        goto bad;
    for (int i = 0; ok && i < nt; i++, m->n_topics++)
        m->topics[i] = read_cstr(r, false, &ok);
    char *regex = read_cstr(r, true, &ok);
    if (ok && regex) {
        bool changed = false;
        int16_t err = set_regex(m, regex, &changed);
        ok = err == KP_ERR_NONE;
    }
    free(regex);
    if (ok)
        m->assigned = read_tps(r, &m->n_assigned, &ok);
    if (ok)
        m->revoking = read_tps(r, &m->n_revoking, &ok);
    if (ok)
        m->target = read_tps(r, &m->n_target, &ok);
    m->classic = kp_read_bool(r);
    m->session_timeout_ms = kp_read_i32(r);
    int32_t np = kp_read_i32(r);
    if (!ok || !kp_reader_ok(r) || np < 0 || (size_t)np > kp_reader_remaining(r) / 6 ||
        !(m->protocols = calloc((size_t)np + 1, sizeof(*m->protocols))))
        goto bad;
    for (int i = 0; i < np; i++) {
        grp_protocol_t *p = &m->protocols[i];
        m->n_protocols = i + 1;
        p->name = read_cstr(r, false, &ok);
        kp_bytes_t b = kp_read_bytes(r);
        if (!ok || !kp_reader_ok(r) || b.len < 0 || !(p->metadata = malloc((size_t)b.len + 1)))
            goto bad;
        memcpy((uint8_t *)p->metadata, b.ptr, (size_t)b.len);
        p->metadata_len = b.len;
    }
    if (m->classic && m->n_protocols == 0)
        goto bad;
    m->session_deadline =
        now + (m->classic ? m->session_timeout_ms : c->cfg.cons_session_timeout_ms);
    m->revoke_deadline = now + m->rebalance_timeout_ms;
    return m;
bad:
    member_free(m);
    return NULL;
}

int grp_cons_restore(grp_coord_t *c, const char *group_id, const uint8_t *state, size_t len)
{
    kp_reader_t r;
    kp_reader_init(&r, state, len);
    if (kp_read_i16(&r) != STATE_VERSION)
        return ST_E_MALFORMED;
    grp_cgroup_t *cg = calloc(1, sizeof(*cg));
    if (!cg)
        return ST_E_NOMEM;
    cg->group_epoch = kp_read_i32(&r);
    cg->assignment_epoch = kp_read_i32(&r);
    cg->assignor = kp_read_i8(&r);
    cg->meta_sum = (uint64_t)kp_read_i64(&r);
    int32_t n = kp_read_i32(&r);
    int rc = ST_E_MALFORMED;
    if (!kp_reader_ok(&r) || n < 0)
        goto out;
    int64_t now = grp__now_ms(c);
    cmember_t **tail = &cg->members;
    for (int i = 0; i < n; i++) {
        cmember_t *m = read_member(c, &r, now);
        if (!m)
            goto out;
        *tail = m;
        tail = &m->next;
        cg->n_members++;
    }
    if (!kp_reader_ok(&r) || kp_reader_remaining(&r) != 0)
        goto out;
    grp_t *g = grp_find(c, group_id);
    rc = ST_E_NOMEM;
    char *pt = strdup("consumer");
    if (!pt || (!g && !(g = grp__group_new(c, group_id)))) {
        free(pt);
        goto out;
    }
    if (g->cg || g->members) { /* loaded twice: keep the first */
        free(pt);
        rc = ST_E_MALFORMED;
        goto out;
    }
    free(g->protocol_type);
    g->protocol_type = pt;
    g->cg = cg;
    cg->saved = true;
    cg->saved_hash = state_hash(state, len);
    group_set_state(c, g);
    ST_INFO("grp", "group=%s consumer group restored at epoch %d, %d members", g->id,
            cg->group_epoch, cg->n_members);
    return 0;
out:
    grp__cons_free(cg);
    return rc;
}

/* ---- Timers, offsets ---- */

void grp__cons_tick(grp_coord_t *c, grp_t *g, int64_t now)
{
    for (cmember_t *m = g->cg->members, *next; m; m = next) {
        next = m->next;
        if (now >= m->session_deadline)
            member_remove(c, g, m, "session expired (group.consumer.session.timeout.ms)");
        else if (m->state == MS_UNREVOKED && m->n_revoking && now >= m->revoke_deadline)
            member_remove(c, g, m, "did not revoke its partitions within its rebalance timeout");
    }
    maybe_downgrade(c, g);
    persist(c, g);
}

int64_t grp__cons_deadline(const grp_t *g)
{
    int64_t d = -1;
    for (const cmember_t *m = g->cg->members; m; m = m->next) {
        int64_t x = m->session_deadline;
        if (m->state == MS_UNREVOKED && m->n_revoking && m->revoke_deadline < x)
            x = m->revoke_deadline;
        d = d < 0 || x < d ? x : d;
    }
    return d;
}

/* OffsetCommit v9+ to a consumer group: the member and its exact epoch (Kafka's rule). */
int16_t grp__cons_commit_check(grp_t *g, int32_t member_epoch, const char *member_id)
{
    if (member_epoch < 0 && (!member_id || !member_id[0]))
        return g->state == GRP_EMPTY ? KP_ERR_NONE : KP_ERR_UNKNOWN_MEMBER_ID;
    cmember_t *m = member_id ? member_find(g->cg, member_id) : NULL;
    if (!m)
        return KP_ERR_UNKNOWN_MEMBER_ID;
    if (m->classic) /* its generation is its member epoch */
        return member_epoch != m->epoch ? KP_ERR_ILLEGAL_GENERATION : KP_ERR_NONE;
    if (member_epoch > m->epoch)
        return KP_ERR_FENCED_MEMBER_EPOCH;
    if (member_epoch < m->epoch)
        return KP_ERR_STALE_MEMBER_EPOCH;
    return KP_ERR_NONE;
}

int16_t grp_cons_fetch_check(const grp_t *g, const char *member_id, int32_t member_epoch)
{
    if (!g->cg || member_epoch < 0)
        return KP_ERR_NONE;
    const cmember_t *m = member_id ? member_find(g->cg, member_id) : NULL;
    if (!m)
        return KP_ERR_UNKNOWN_MEMBER_ID;
    return member_epoch != m->epoch ? KP_ERR_STALE_MEMBER_EPOCH : KP_ERR_NONE;
}

/* ---- Description ---- */

bool grp_is_consumer(const grp_t *g)
{
    return g->cg != NULL;
}

const char *grp_cons_state(const grp_t *g)
{
    if (g->state == GRP_DEAD)
        return "Dead";
    if (!g->cg || !g->cg->n_members)
        return "Empty";
    if (g->cg->assignment_epoch < g->cg->group_epoch)
        return "Assigning";
    for (const cmember_t *m = g->cg->members; m; m = m->next)
        if (m->epoch != -2 && (m->epoch != g->cg->assignment_epoch || m->state != MS_STABLE))
            return "Reconciling";
    return "Stable";
}

int32_t grp_cons_group_epoch(const grp_t *g)
{
    return g->cg ? g->cg->group_epoch : 0;
}

int32_t grp_cons_assignment_epoch(const grp_t *g)
{
    return g->cg ? g->cg->assignment_epoch : 0;
}

const char *grp_cons_assignor(const grp_t *g)
{
    return g->cg && g->cg->assignor == GRP_ASSIGNOR_RANGE ? "range" : "uniform";
}

int grp_cons_n_members(const grp_t *g)
{
    return g->cg ? g->cg->n_members : 0;
}

void grp_cons_member_desc(const grp_t *g, int i, grp_cmember_desc_t *out)
{
    memset(out, 0, sizeof(*out));
    const cmember_t *m = g->cg ? g->cg->members : NULL;
    while (m && i-- > 0)
        m = m->next;
    if (!m)
        return;
    *out = (grp_cmember_desc_t){
        .member_id = m->member_id,
        .instance_id = m->instance_id,
        .rack_id = m->rack_id,
        .client_id = m->client_id,
        .client_host = m->client_host,
        .member_epoch = m->epoch,
        .topics = (const char *const *)m->topics,
        .n_topics = m->n_topics,
        .regex = m->regex,
        .assigned = m->assigned,
        .n_assigned = m->n_assigned,
        .target = m->target,
        .n_target = m->n_target,
    };
}

bool grp__cons_subscribed(const grp_t *g, const char *topic)
{
    for (const cmember_t *m = g->cg->members; m; m = m->next) {
        for (int i = 0; i < m->n_topics; i++)
            if (!strcmp(m->topics[i], topic))
                return true;
        if (m->regex && !regexec(&m->re, topic, 0, NULL, 0))
            return true;
    }
    return false;
}
