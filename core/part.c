/* part.c - per-shard partition registry (see part.h).
 * Invariant: a partition is open on exactly one shard, rt_shard_for(topic,
 * partition, n); the registry is touched only from that shard's loop. */
#include "core/part.h"
#include "core/st_log.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PART_TOPIC_MAX 249 /* Kafka's limit on topic names */

typedef struct entry {
    struct entry *next;
    char *topic; /* owned */
    int32_t partition;
    plog_t *log; /* owned */
} entry_t;

struct part_shard {
    rt_shard_t *sh;    /* borrowed */
    plog_shard_t *psh; /* owned */
    part_opts_t opts;
    char *data_dir;    /* owned copy */
    entry_t **buckets; /* owned */
    int n_buckets, n;
    uv_timer_t tick;
    plog_cleaner_t *cleaner; /* owned: compacts this shard's compacted logs */
    uv_timer_t clean_timer;  /* log.cleaner.backoff.ms */
    int closing_logs;
    part_closed_cb closed_cb;
    void *closed_arg;
};

int64_t part_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned bucket_of(const part_shard_t *ps, const char *topic, int32_t partition)
{
    uint32_t h = 2166136261u;
    for (const char *c = topic; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    h = (h ^ (uint32_t)partition) * 16777619u;
    return h % (unsigned)ps->n_buckets;
}

plog_t *part_get(part_shard_t *ps, const char *topic, int32_t partition)
{
    for (entry_t *e = ps->buckets[bucket_of(ps, topic, partition)]; e; e = e->next)
        if (e->partition == partition && !strcmp(e->topic, topic))
            return e->log;
    return NULL;
}

int part_count(const part_shard_t *ps)
{
    return ps->n;
}

void part_foreach(part_shard_t *ps,
                  void (*fn)(void *arg, const char *topic, int32_t partition, plog_t *log),
                  void *arg)
{
    for (int i = 0; i < ps->n_buckets; i++)
        for (entry_t *e = ps->buckets[i]; e; e = e->next)
            fn(arg, e->topic, e->partition, e->log);
}

plog_shard_t *part_plog_shard(part_shard_t *ps)
{
    return ps->psh;
}

static int grow(part_shard_t *ps)
{
    int nb = ps->n_buckets * 2;
    entry_t **b = calloc((size_t)nb, sizeof(*b));
    if (!b)
        return ST_E_NOMEM;
    entry_t **old = ps->buckets;
    int on = ps->n_buckets;
    ps->buckets = b;
    ps->n_buckets = nb;
    for (int i = 0; i < on; i++) {
        for (entry_t *e = old[i], *next; e; e = next) {
            next = e->next;
            unsigned k = bucket_of(ps, e->topic, e->partition);
            e->next = b[k];
            b[k] = e;
        }
    }
    free(old);
    return 0;
}

int part_open(part_shard_t *ps,
              const char *topic,
              int32_t partition,
              const plog_config_t *cfg,
              plog_t **out,
              char *errbuf,
              size_t errbuf_len)
{
    plog_t *log = part_get(ps, topic, partition);
    if (log) {
        *out = log;
        return 0;
    }
    if (!*topic || strlen(topic) > PART_TOPIC_MAX || partition < 0) {
        snprintf(errbuf, errbuf_len, "invalid partition %s-%d", topic, partition);
        return ST_E_INVAL;
    }
    if (ps->n >= ps->n_buckets && grow(ps) != 0)
        return ST_E_NOMEM;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/%s-%d", ps->data_dir, topic, partition);
    plog_config_t tcfg = ps->opts.log_cfg;
    if (cfg)
        tcfg = *cfg;
    else if (ps->opts.topic_config)
        ps->opts.topic_config(ps->opts.topic_config_arg, topic, &tcfg);
    int rc = plog_open(ps->psh, dir, &tcfg, part_now_ms(), &log, errbuf, errbuf_len);
    if (rc != 0)
        return rc;
    entry_t *e = calloc(1, sizeof(*e));
    if (!e || !(e->topic = strdup(topic))) {
        free(e);
        plog_close(log, NULL, NULL);
        return ST_E_NOMEM;
    }
    e->partition = partition;
    e->log = log;
    unsigned k = bucket_of(ps, topic, partition);
    e->next = ps->buckets[k];
    ps->buckets[k] = e;
    ps->n++;
    *out = log;
    return 0;
}

static void on_tick(uv_timer_t *t)
{
    part_shard_t *ps = t->data;
    int64_t now = part_now_ms();
    for (int i = 0; i < ps->n_buckets; i++)
        for (entry_t *e = ps->buckets[i]; e; e = e->next)
            if (plog_tick(e->log, now) < 0)
                ST_WARN("part", "tick failed tp=%s-%d", e->topic, e->partition);
}

/* Hand the cleaner the dirtiest compacted log that is due (each pass ends in
 * on_clean_done: look again). */
static void try_clean(part_shard_t *ps)
{
    if (!ps->cleaner || plog_cleaner_is_busy(ps->cleaner) || ps->closing_logs > 0 || ps->n == 0)
        return;
    plog_t **logs = malloc((size_t)ps->n * sizeof(*logs));
    entry_t **ents = malloc((size_t)ps->n * sizeof(*ents));
    int n = 0, picked = -1;
    for (int b = 0; logs && ents && b < ps->n_buckets; b++)
        for (entry_t *e = ps->buckets[b]; e; e = e->next) {
            ents[n] = e;
            logs[n++] = e->log;
        }
    int rc = logs && ents
                 ? plog_cleaner_offer_dirtiest(ps->cleaner, logs, n, part_now_ms(), &picked)
                 : ST_E_NOMEM;
    if (rc < 0)
        ST_WARN("part", "cannot start the cleaner tp=%s-%d: %s",
                picked >= 0 ? ents[picked]->topic : "?", picked >= 0 ? ents[picked]->partition : -1,
                st_strerror(rc));
    free(logs);
    free(ents);
}

static void on_clean_timer(uv_timer_t *t)
{
    try_clean(t->data);
}

static void on_clean_done(void *arg)
{
    try_clean(arg);
}

static int open_existing(part_shard_t *ps, char *errbuf, size_t errbuf_len)
{
    DIR *d = opendir(ps->data_dir);
    if (!d) {
        snprintf(errbuf, errbuf_len, "cannot open data directory %s", ps->data_dir);
        return ST_E_IO;
    }
    int n_shards = rt_shard_count(rt_shard_rt(ps->sh));
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d))) {
        char topic[PART_TOPIC_MAX + 1];
        int32_t p;
        if (de->d_name[0] == '.' ||
            plog_parse_dir_name(de->d_name, topic, sizeof(topic), &p) != 0 ||
            rt_shard_for(topic, p, n_shards) != rt_shard_id(ps->sh))
            continue;
        struct stat st;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", ps->data_dir, de->d_name);
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        plog_t *log;
        rc = part_open(ps, topic, p, NULL, &log, errbuf, errbuf_len);
        if (rc == 0)
            ST_INFO("part", "recovered tp=%s-%d start=%lld end=%lld segments=%d", topic, p,
                    (long long)plog_start_offset(log), (long long)plog_end_offset(log),
                    plog_segment_count(log));
    }
    closedir(d);
    return rc;
}

static void free_registry(part_shard_t *ps)
{
    free(ps->buckets);
    free(ps->data_dir);
    free(ps);
}

int part_shard_new(rt_shard_t *sh,
                   plog_env_t *env,
                   const part_opts_t *opts,
                   part_shard_t **out,
                   char *errbuf,
                   size_t errbuf_len)
{
    part_shard_t *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return ST_E_NOMEM;
    ps->sh = sh;
    ps->opts = *opts;
    ps->n_buckets = 64;
    ps->buckets = calloc((size_t)ps->n_buckets, sizeof(*ps->buckets));
    ps->data_dir = strdup(opts->data_dir);
    if (!ps->buckets || !ps->data_dir) {
        free_registry(ps);
        return ST_E_NOMEM;
    }
    int rc = plog_shard_new(env, rt_shard_loop(sh), &ps->psh);
    if (rc != 0) {
        free_registry(ps);
        return rc;
    }
    uv_timer_init(rt_shard_loop(sh), &ps->tick);
    ps->tick.data = ps;
    uv_timer_start(&ps->tick, on_tick, (uint64_t)opts->tick_interval_ms,
                   (uint64_t)opts->tick_interval_ms);
    uv_timer_init(rt_shard_loop(sh), &ps->clean_timer);
    ps->clean_timer.data = ps;
    int64_t backoff = opts->cleaner_backoff_ms > 0 ? opts->cleaner_backoff_ms : 15000;
    size_t map_bytes =
        opts->cleaner_buffer_bytes > 0 ? (size_t)opts->cleaner_buffer_bytes : (size_t)128 << 20;
    if (plog_cleaner_new(rt_shard_loop(sh), map_bytes, opts->cleaner_io_bytes_per_sec,
                         &ps->cleaner) == 0) {
        plog_cleaner_on_done(ps->cleaner, on_clean_done, ps);
        uv_timer_start(&ps->clean_timer, on_clean_timer, (uint64_t)backoff, (uint64_t)backoff);
    } else {
        ps->cleaner = NULL;
        ST_ERROR("part", "cannot start the log cleaner: compacted topics are not cleaned");
    }
    *out = ps;
    return open_existing(ps, errbuf, errbuf_len); /* on error the caller closes ps */
}

static void on_timer_closed(uv_handle_t *h)
{
    part_shard_t *ps = h->data;
    part_closed_cb cb = ps->closed_cb;
    void *arg = ps->closed_arg;
    free_registry(ps);
    if (cb)
        cb(arg);
}

static void on_clean_timer_closed(uv_handle_t *h)
{
    part_shard_t *ps = h->data;
    uv_close((uv_handle_t *)&ps->tick, on_timer_closed);
}

static void maybe_finish(part_shard_t *ps)
{
    if (ps->closing_logs > 0)
        return;
    plog_cleaner_free(ps->cleaner); /* idle: every log it held is closed */
    ps->cleaner = NULL;
    plog_shard_free(ps->psh);
    uv_close((uv_handle_t *)&ps->clean_timer, on_clean_timer_closed);
}

static void on_log_closed(void *arg)
{
    part_shard_t *ps = arg;
    ps->closing_logs--;
    maybe_finish(ps);
}

void part_shard_close(part_shard_t *ps, part_closed_cb cb, void *arg)
{
    ps->closed_cb = cb;
    ps->closed_arg = arg;
    uv_timer_stop(&ps->tick);
    uv_timer_stop(&ps->clean_timer);
    if (ps->cleaner)
        plog_cleaner_cancel(ps->cleaner); /* a running pass stops at its next batch */
    ps->closing_logs = 1;                 /* held until every close is issued */
    for (int i = 0; i < ps->n_buckets; i++) {
        for (entry_t *e = ps->buckets[i], *next; e; e = next) {
            next = e->next;
            ps->closing_logs++;
            plog_close(e->log, on_log_closed, ps);
            free(e->topic);
            free(e);
        }
        ps->buckets[i] = NULL;
    }
    ps->n = 0;
    on_log_closed(ps);
}

void part_set_topic_config(part_shard_t *ps, const char *topic, const plog_config_t *cfg)
{
    for (int i = 0; i < ps->n_buckets; i++)
        for (entry_t *e = ps->buckets[i]; e; e = e->next)
            if (!strcmp(e->topic, topic))
                plog_set_config(e->log, cfg);
}

/* Deleting a topic: close each log, then remove its directory on the pool. */
typedef struct {
    uv_work_t work;
    char *dir; /* owned */
} rmdir_t;

static void rm_tree(uv_work_t *w)
{
    rmdir_t *r = w->data;
    DIR *d = opendir(r->dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")))
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) != 0)
            ST_WARN("part", "cannot delete %s/%s", r->dir, de->d_name);
    }
    if (d)
        closedir(d);
    if (rmdir(r->dir) != 0)
        ST_WARN("part", "cannot delete directory %s", r->dir);
}

static void rm_done(uv_work_t *w, int status)
{
    rmdir_t *r = w->data;
    (void)status;
    free(r->dir);
    free(r);
}

typedef struct {
    part_shard_t *ps;
    char *dir; /* owned */
} drop_t;

static void on_dropped(void *arg)
{
    drop_t *d = arg;
    rmdir_t *r = malloc(sizeof(*r));
    if (r) {
        r->dir = d->dir;
        r->work.data = r;
        if (uv_queue_work(rt_shard_loop(d->ps->sh), &r->work, rm_tree, rm_done) == 0)
            d->dir = NULL;
        else
            free(r);
    }
    free(d->dir);
    free(d);
}

int part_drop_topic(part_shard_t *ps,
                    const char *topic,
                    void (*on_drop)(void *, plog_t *),
                    void *arg)
{
    int n = 0;
    for (int i = 0; i < ps->n_buckets; i++) {
        for (entry_t **pe = &ps->buckets[i]; *pe;) {
            entry_t *e = *pe;
            if (strcmp(e->topic, topic) != 0) {
                pe = &e->next;
                continue;
            }
            *pe = e->next;
            ps->n--;
            drop_t *d = malloc(sizeof(*d));
            if (d) {
                d->ps = ps;
                d->dir = strdup(plog_dir(e->log));
            }
            ST_INFO("part", "deleting partition tp=%s-%d", e->topic, e->partition);
            if (on_drop)
                on_drop(arg, e->log);
            plog_close(e->log, d ? on_dropped : NULL, d);
            free(e->topic);
            free(e);
            n++;
        }
    }
    return n;
}
