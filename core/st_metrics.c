/* st_metrics.c - lock-free per-slot metrics, summed when scraped (see st_metrics.h).
 * Data path: a shard's handler adds into its own slot (relaxed atomic add on a
 * cache line no other shard writes); GET /metrics on the admin loop reads every
 * slot and prints the sums.
 * Invariants: 1. the registry is allocated before any thread updates it and
 *                freed after all of them stopped;
 *             2. topic entries are only ever added (at the head of a hash
 *                chain, under t_mu, published with a release store) and
 *                never removed, so readers walk chains without a lock. */
#include "core/st_metrics.h"
#include "core/rt.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_BUCKETS     16              /* finite upper bounds; +Inf is one more cell */
#define N_CELLS       (N_BUCKETS + 3) /* buckets, +Inf, sum (ns), count */
#define TOPIC_BUCKETS 256
#define LAG_PERIOD_MS 100

/* Upper bounds in nanoseconds: 100 us .. 10 s. */
static const uint64_t k_bounds_ns[N_BUCKETS] = {
    100000,   250000,    500000,    1000000,   2500000,    5000000,    10000000,   25000000,
    50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000,
};

static const struct {
    const char *name, *type, *help;
} k_metrics[ST_M__COUNT] = {
#define M_DEF(id, name, type, help) {name, type, help},
    ST_METRICS(M_DEF)
#undef M_DEF
};

static const struct {
    const char *name, *help;
} k_tmetrics[ST_T__COUNT] = {
#define T_DEF(id, name, help) {name, help},
    ST_TOPIC_METRICS(T_DEF)
#undef T_DEF
};

const char *const st_obj_op_names[ST_OBJ__COUNT] = {
#define OP_NAME(id, value) value,
    ST_OBJ_OPS(OP_NAME)
#undef OP_NAME
};

const char *const st_produce_stage_names[ST_PSTAGE__COUNT] = {
#define PSTAGE_NAME(id, value) value,
    ST_PRODUCE_STAGES(PSTAGE_NAME)
#undef PSTAGE_NAME
};

static const struct {
    const char *name, *help;
} k_ometrics[ST_O__COUNT] = {
#define O_DEF(id, name, help) {name, help},
    ST_OP_METRICS(O_DEF)
#undef O_DEF
};

static const struct {
    const char *name, *label, *help;
    int n_labels;
    const char *const *values;
    bool per_slot;
} k_hists[ST_H__COUNT] = {
#define H_DEF(id, name, label, n_labels, values, per_slot, help)                                   \
    {name, label, help, n_labels, values, per_slot},
    ST_HISTOGRAMS(H_DEF)
#undef H_DEF
};

typedef _Atomic uint64_t st_cell_t;

typedef struct topic_ent {
    struct topic_ent *_Atomic next;
    char *name;   /* owned */
    st_cell_t *c; /* owned: [slot][ST_T__COUNT] */
} topic_ent_t;

typedef struct {
    struct uv_timer_s timer;
    uint64_t last_ns;
    int shard;
} lag_t;

static struct {
    bool is_init;
    int n_slots;
    size_t stride; /* cells per slot of the plain metrics, cache-line rounded */
    st_cell_t *plain;
    size_t op_stride; /* cells per slot of the per-operation counters, cache-line rounded */
    st_cell_t *ops;   /* [slot][ST_O__COUNT][ST_OBJ__COUNT] */
    st_cell_t *hist[ST_H__COUNT]; /* [slot or 0][label][N_CELLS] */
    topic_ent_t *_Atomic topics[TOPIC_BUCKETS];
    pthread_mutex_t t_mu;
    lag_t **lags; /* [shard], owned by each shard's loop while running */
} g_m = {.t_mu = PTHREAD_MUTEX_INITIALIZER};

static int slot(void)
{
    rt_shard_t *sh = rt_current();
    int s = sh ? rt_shard_id(sh) + 1 : 0;
    return s < g_m.n_slots ? s : 0;
}

int st_metrics_init(int n_shards)
{
    if (g_m.is_init || n_shards < 1 || n_shards > 1024)
        return ST_E_INVAL;
    g_m.n_slots = n_shards + 1;
    g_m.stride = (ST_M__COUNT + 7) / 8 * 8; /* 8 cells = 64 bytes */
    g_m.plain = calloc((size_t)g_m.n_slots * g_m.stride, sizeof(st_cell_t));
    g_m.op_stride = (ST_O__COUNT * ST_OBJ__COUNT + 7) / 8 * 8;
    g_m.ops = calloc((size_t)g_m.n_slots * g_m.op_stride, sizeof(st_cell_t));
    g_m.lags = calloc((size_t)n_shards, sizeof(*g_m.lags));
    if (!g_m.plain || !g_m.ops || !g_m.lags)
        goto fail;
    for (int h = 0; h < ST_H__COUNT; h++) {
        size_t n = (size_t)(k_hists[h].per_slot ? g_m.n_slots : 1) * (size_t)k_hists[h].n_labels;
        g_m.hist[h] = calloc(n * N_CELLS, sizeof(st_cell_t));
        if (!g_m.hist[h])
            goto fail;
    }
    g_m.is_init = true;
    return 0;
fail:
    g_m.is_init = true;
    st_metrics_fini();
    return ST_E_NOMEM;
}

void st_metrics_fini(void)
{
    if (!g_m.is_init)
        return;
    g_m.is_init = false;
    for (int b = 0; b < TOPIC_BUCKETS; b++) {
        topic_ent_t *e = atomic_load(&g_m.topics[b]);
        while (e) {
            topic_ent_t *next = atomic_load(&e->next);
            free(e->name);
            free(e->c);
            free(e);
            e = next;
        }
        atomic_store(&g_m.topics[b], NULL);
    }
    for (int h = 0; h < ST_H__COUNT; h++) {
        free(g_m.hist[h]);
        g_m.hist[h] = NULL;
    }
    free(g_m.plain);
    free(g_m.ops);
    free(g_m.lags);
    g_m.plain = NULL;
    g_m.ops = NULL;
    g_m.lags = NULL;
}

/* ---- Updates ---- */

static inline void cell_add(st_cell_t *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static inline uint64_t cell_get(st_cell_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void st_metric_add(st_metric_t m, int64_t v)
{
    if (!g_m.is_init || (unsigned)m >= ST_M__COUNT)
        return;
    /* Gauges go below zero in one slot and above in another (a connection
     * closed on another thread): unsigned wrap-around sums correctly. */
    cell_add(&g_m.plain[(size_t)slot() * g_m.stride + m], (uint64_t)v);
}

void st_metric_op(st_op_metric_t m, st_obj_op_t op, uint64_t v)
{
    if (!g_m.is_init || (unsigned)m >= ST_O__COUNT || (unsigned)op >= ST_OBJ__COUNT)
        return;
    cell_add(&g_m.ops[(size_t)slot() * g_m.op_stride + (size_t)m * ST_OBJ__COUNT + op], v);
}

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static topic_ent_t *topic_find(topic_ent_t *e, const char *name)
{
    for (; e; e = atomic_load_explicit(&e->next, memory_order_acquire))
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

static topic_ent_t *topic_get(const char *name)
{
    _Atomic(topic_ent_t *) *head = &g_m.topics[hash_name(name) % TOPIC_BUCKETS];
    topic_ent_t *e = topic_find(atomic_load_explicit(head, memory_order_acquire), name);
    if (e)
        return e;
    pthread_mutex_lock(&g_m.t_mu);
    e = topic_find(atomic_load_explicit(head, memory_order_acquire), name);
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (e) {
            e->name = strdup(name);
            e->c = calloc((size_t)g_m.n_slots * ST_T__COUNT, sizeof(st_cell_t));
            if (!e->name || !e->c) {
                free(e->name);
                free(e->c);
                free(e);
                e = NULL;
            } else {
                atomic_store_explicit(&e->next, atomic_load(head), memory_order_relaxed);
                atomic_store_explicit(head, e, memory_order_release);
            }
        }
    }
    pthread_mutex_unlock(&g_m.t_mu);
    return e;
}

void st_metric_topic(st_topic_metric_t m, const char *topic, uint64_t bytes)
{
    if (!g_m.is_init || !topic || (unsigned)m + 1 >= ST_T__COUNT)
        return;
    topic_ent_t *e = topic_get(topic);
    if (!e)
        return; /* out of memory: lose the sample, never the request */
    st_cell_t *c = &e->c[(size_t)slot() * ST_T__COUNT];
    cell_add(&c[m], 1);
    cell_add(&c[m + 1], bytes);
}

void st_metric_observe_ns(st_hist_t h, int label, uint64_t ns)
{
    if (!g_m.is_init || (unsigned)h >= ST_H__COUNT || label < 0 || label >= k_hists[h].n_labels)
        return;
    size_t row =
        (size_t)(k_hists[h].per_slot ? slot() : 0) * (size_t)k_hists[h].n_labels + (size_t)label;
    st_cell_t *c = &g_m.hist[h][row * N_CELLS];
    int b = 0;
    while (b < N_BUCKETS && ns > k_bounds_ns[b])
        b++;
    cell_add(&c[b], 1); /* b == N_BUCKETS is +Inf */
    cell_add(&c[N_BUCKETS + 1], ns);
    cell_add(&c[N_BUCKETS + 2], 1);
}

int64_t st_metric_value(st_metric_t m)
{
    if (!g_m.is_init || (unsigned)m >= ST_M__COUNT)
        return 0;
    uint64_t sum = 0;
    for (int s = 0; s < g_m.n_slots; s++)
        sum += cell_get(&g_m.plain[(size_t)s * g_m.stride + m]);
    return (int64_t)sum;
}

/* ---- Loop lag ---- */

static void on_lag_tick(uv_timer_t *t)
{
    lag_t *l = t->data;
    uint64_t now = uv_hrtime();
    uint64_t expected = l->last_ns + (uint64_t)LAG_PERIOD_MS * 1000000u;
    st_metric_observe_ns(ST_H_LOOP_LAG, l->shard, now > expected ? now - expected : 0);
    l->last_ns = now;
}

int st_metrics_lag_start(uv_loop_t *loop)
{
    rt_shard_t *sh = rt_current();
    if (!g_m.is_init || !sh || rt_shard_id(sh) + 1 >= g_m.n_slots)
        return 0; /* nothing to measure */
    lag_t *l = calloc(1, sizeof(*l));
    if (!l)
        return ST_E_NOMEM;
    l->shard = rt_shard_id(sh);
    int rc = uv_timer_init(loop, &l->timer);
    if (rc != 0) {
        free(l);
        return rc;
    }
    l->timer.data = l;
    l->last_ns = uv_hrtime();
    rc = uv_timer_start(&l->timer, on_lag_tick, LAG_PERIOD_MS, LAG_PERIOD_MS);
    g_m.lags[l->shard] = l;
    if (rc != 0) {
        st_metrics_lag_stop();
        return rc;
    }
    return 0;
}

void st_metrics_lag_stop(void)
{
    rt_shard_t *sh = rt_current();
    if (!g_m.is_init || !sh || rt_shard_id(sh) + 1 >= g_m.n_slots)
        return;
    lag_t *l = g_m.lags[rt_shard_id(sh)];
    g_m.lags[rt_shard_id(sh)] = NULL;
    if (l)
        uv_close((uv_handle_t *)&l->timer, (uv_close_cb)free); /* timer is the first member */
}

/* ---- Rendering ---- */

void st_mtext_printf(st_mtext_t *t, const char *fmt, ...)
{
    if (t->is_oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = t->cap - t->len;
        int n = vsnprintf(t->p ? t->p + t->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->is_oom = true;
            return;
        }
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->is_oom = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

void st_mtext_free(st_mtext_t *t)
{
    free(t->p);
    memset(t, 0, sizeof(*t));
}

void st_mtext_label(st_mtext_t *t, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            st_mtext_printf(t, "\\\\");
        else if (*v == '"')
            st_mtext_printf(t, "\\\"");
        else if (*v == '\n')
            st_mtext_printf(t, "\\n");
        else
            st_mtext_printf(t, "%c", *v);
    }
}

static void render_topics(st_mtext_t *t)
{
    for (int m = 0; m < ST_T__COUNT; m++) {
        st_mtext_printf(t, "# HELP %s %s\n# TYPE %s counter\n", k_tmetrics[m].name,
                        k_tmetrics[m].help, k_tmetrics[m].name);
        for (int b = 0; b < TOPIC_BUCKETS; b++) {
            topic_ent_t *e = atomic_load_explicit(&g_m.topics[b], memory_order_acquire);
            for (; e; e = atomic_load_explicit(&e->next, memory_order_acquire)) {
                uint64_t sum = 0;
                for (int s = 0; s < g_m.n_slots; s++)
                    sum += cell_get(&e->c[(size_t)s * ST_T__COUNT + (size_t)m]);
                st_mtext_printf(t, "%s{topic=\"", k_tmetrics[m].name);
                st_mtext_label(t, e->name);
                st_mtext_printf(t, "\"} %" PRIu64 "\n", sum);
            }
        }
    }
}

static void render_hist(st_mtext_t *t, st_hist_t h, const char *(*label_name)(st_hist_t, int))
{
    const char *name = k_hists[h].name;
    st_mtext_printf(t, "# HELP %s %s\n# TYPE %s histogram\n", name, k_hists[h].help, name);
    int n_rows = k_hists[h].per_slot ? g_m.n_slots : 1;
    for (int l = 0; l < k_hists[h].n_labels; l++) {
        uint64_t cells[N_CELLS] = {0};
        for (int s = 0; s < n_rows; s++) {
            st_cell_t *c =
                &g_m.hist[h][((size_t)s * (size_t)k_hists[h].n_labels + (size_t)l) * N_CELLS];
            for (int i = 0; i < N_CELLS; i++)
                cells[i] += cell_get(&c[i]);
        }
        if (k_hists[h].label && cells[N_BUCKETS + 2] == 0)
            continue; /* a labelled series appears with its first sample */
        char lbl[128] = "";
        if (k_hists[h].label) {
            const char *ln = k_hists[h].values ? k_hists[h].values[l]
                             : label_name      ? label_name(h, l)
                                               : NULL;
            if (ln)
                snprintf(lbl, sizeof(lbl), "%s=\"%s\",", k_hists[h].label, ln);
            else
                snprintf(lbl, sizeof(lbl), "%s=\"%d\",", k_hists[h].label, l);
        }
        /* Counts are read one by one while others add: make the cumulative
         * series monotonic and consistent with _count. */
        uint64_t cum = 0;
        for (int b = 0; b <= N_BUCKETS; b++) {
            cum += cells[b];
            if (b < N_BUCKETS)
                st_mtext_printf(t, "%s_bucket{%sle=\"%g\"} %" PRIu64 "\n", name, lbl,
                                (double)k_bounds_ns[b] / 1e9, cum);
            else
                st_mtext_printf(t, "%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n", name, lbl, cum);
        }
        size_t ll = strlen(lbl);
        if (ll)
            lbl[ll - 1] = 0; /* drop the trailing comma */
        st_mtext_printf(t, "%s_sum%s%s%s %.9f\n", name, ll ? "{" : "", lbl, ll ? "}" : "",
                        (double)cells[N_BUCKETS + 1] / 1e9);
        st_mtext_printf(t, "%s_count%s%s%s %" PRIu64 "\n", name, ll ? "{" : "", lbl, ll ? "}" : "",
                        cum);
    }
}

static void render_ops(st_mtext_t *t)
{
    for (int m = 0; m < ST_O__COUNT; m++) {
        st_mtext_printf(t, "# HELP %s %s\n# TYPE %s counter\n", k_ometrics[m].name,
                        k_ometrics[m].help, k_ometrics[m].name);
        for (int op = 0; op < ST_OBJ__COUNT; op++) {
            uint64_t sum = 0;
            for (int s = 0; s < g_m.n_slots; s++)
                sum += cell_get(
                    &g_m.ops[(size_t)s * g_m.op_stride + (size_t)m * ST_OBJ__COUNT + (size_t)op]);
            st_mtext_printf(t, "%s{op=\"%s\"} %" PRIu64 "\n", k_ometrics[m].name,
                            st_obj_op_names[op], sum);
        }
    }
}

void st_metrics_render(st_mtext_t *t, const char *(*label_name)(st_hist_t h, int label))
{
    if (!g_m.is_init)
        return;
    for (int m = 0; m < ST_M__COUNT; m++) {
        st_mtext_printf(t, "# HELP %s %s\n# TYPE %s %s\n%s %" PRId64 "\n", k_metrics[m].name,
                        k_metrics[m].help, k_metrics[m].name, k_metrics[m].type, k_metrics[m].name,
                        st_metric_value((st_metric_t)m));
    }
    render_topics(t);
    render_ops(t);
    for (int h = 0; h < ST_H__COUNT; h++)
        render_hist(t, (st_hist_t)h, label_name);
}
