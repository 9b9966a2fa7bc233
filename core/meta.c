/* meta.c - topic metadata in SQLite, published as immutable snapshots.
 * Threads: SQLite is only touched with m->db_mu held, from start-up or from a
 * thread-pool work callback; loops only swap snapshot pointers (snap_mu).
 * A mutation: work() {lock db_mu; check against the current snapshot; write
 * the transaction; build and publish the next snapshot; unlock} -> after()
 * on the caller's loop runs the callback. */
#include "core/meta.h"
#include "core/acl.h"
#include "core/meta_int.h"
#include "core/st_log.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define PID_BLOCK 1000

/* ---- Snapshots ---- */

static void topic_fini(meta_topic_t *t)
{
    free(t->name);
    for (int i = 0; i < t->n_configs; i++) {
        free(t->configs[i].key);
        free(t->configs[i].value);
    }
    free(t->configs);
}

void meta_snap_put(meta_snap_t *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (int i = 0; i < s->n_topics; i++)
        topic_fini(&s->topics[i]);
    free(s->topics);
    free(s);
}

meta_snap_t *meta_snap_get(meta_t *m)
{
    pthread_mutex_lock(&m->snap_mu);
    meta_snap_t *s = m->snap;
    atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&m->snap_mu);
    return s;
}

static void publish(meta_t *m, meta_snap_t *s)
{
    pthread_mutex_lock(&m->snap_mu);
    meta_snap_t *old = m->snap;
    s->version = old ? old->version + 1 : 1;
    m->snap = s;
    pthread_mutex_unlock(&m->snap_mu);
    meta_snap_put(old);
}

/* Order a stored name (NUL-terminated) against a wire name of blen bytes, which may hold
 * NUL bytes (strncmp would stop at one and the length test then read past a). */
static int cmp_name(const char *a, const char *b, size_t blen)
{
    size_t alen = strlen(a);
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

const meta_topic_t *meta_snap_find(const meta_snap_t *s, const char *name, size_t len)
{
    int lo = 0, hi = s->n_topics - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = cmp_name(s->topics[mid].name, name, len);
        if (c == 0)
            return &s->topics[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

const meta_topic_t *meta_snap_find_id(const meta_snap_t *s, const uint8_t id[16])
{
    for (int i = 0; i < s->n_topics; i++)
        if (!memcmp(s->topics[i].id, id, 16))
            return &s->topics[i];
    return NULL;
}

const char *meta_topic_config(const meta_topic_t *t, const char *key)
{
    for (int i = 0; i < t->n_configs; i++)
        if (!strcmp(t->configs[i].key, key))
            return t->configs[i].value;
    return NULL;
}

const char *meta_topic_name_invalid(const char *name, size_t len)
{
    if (len == 0)
        return "topic name is empty";
    if (len > META_TOPIC_MAX)
        return "topic name is longer than 249 characters";
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return "topic name cannot be '.' or '..'";
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return "topic name may contain only ASCII alphanumerics, '.', '_' and '-'";
    }
    return NULL;
}

static int topic_copy(meta_topic_t *dst, const meta_topic_t *src)
{
    *dst = *src;
    dst->name = strdup(src->name);
    dst->configs = src->n_configs ? calloc((size_t)src->n_configs, sizeof(meta_kv_t)) : NULL;
    if (!dst->name || (src->n_configs && !dst->configs))
        return ST_E_NOMEM;
    for (int i = 0; i < src->n_configs; i++) {
        dst->configs[i].key = strdup(src->configs[i].key);
        dst->configs[i].value = strdup(src->configs[i].value);
        if (!dst->configs[i].key || !dst->configs[i].value)
            return ST_E_NOMEM;
    }
    return 0;
}

/* A copy of s with room for one more topic; skip = index to drop or -1. */
static meta_snap_t *snap_clone(const meta_snap_t *s, int skip)
{
    meta_snap_t *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    atomic_init(&n->refs, 1);
    n->topics = calloc((size_t)s->n_topics + 1, sizeof(meta_topic_t));
    if (!n->topics) {
        free(n);
        return NULL;
    }
    for (int i = 0; i < s->n_topics; i++) {
        if (i == skip)
            continue;
        if (topic_copy(&n->topics[n->n_topics++], &s->topics[i]) != 0) {
            meta_snap_put(n);
            return NULL;
        }
    }
    return n;
}

static int cmp_kv(const void *a, const void *b)
{
    return strcmp(((const meta_kv_t *)a)->key, ((const meta_kv_t *)b)->key);
}

static int cmp_topic(const void *a, const void *b)
{
    return strcmp(((const meta_topic_t *)a)->name, ((const meta_topic_t *)b)->name);
}

/* ---- SQLite ---- */

int meta__exec(meta_t *m, const char *sql, char *errbuf, size_t errbuf_len)
{
    char *err = NULL;
    if (sqlite3_exec(m->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        snprintf(errbuf, errbuf_len, "metadata store: %s", err ? err : "error");
        sqlite3_free(err);
        return ST_E_IO;
    }
    return 0;
}

static int acls_open(meta_t *m, char *errbuf, size_t errbuf_len);

static int load(meta_t *m, meta_snap_t *s, char *errbuf, size_t errbuf_len)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(m->db, "SELECT name, id, partitions, created_ms FROM topics", -1, &st,
                           NULL) != SQLITE_OK)
        goto fail;
    int cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (s->n_topics == cap) {
            cap = cap ? cap * 2 : 16;
            meta_topic_t *t = realloc(s->topics, (size_t)cap * sizeof(*t));
            if (!t) {
                sqlite3_finalize(st);
                return ST_E_NOMEM;
            }
            s->topics = t;
        }
        meta_topic_t *t = &s->topics[s->n_topics++];
        memset(t, 0, sizeof(*t));
        t->name = strdup((const char *)sqlite3_column_text(st, 0));
        if (sqlite3_column_bytes(st, 1) == 16)
            memcpy(t->id, sqlite3_column_blob(st, 1), 16);
        t->n_partitions = sqlite3_column_int(st, 2);
        t->created_ms = sqlite3_column_int64(st, 3);
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(m->db, "SELECT topic, key, value FROM topic_configs", -1, &st, NULL) !=
        SQLITE_OK)
        goto fail;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        for (int i = 0; i < s->n_topics; i++) {
            meta_topic_t *t = &s->topics[i];
            if (strcmp(t->name, name) != 0)
                continue;
            meta_kv_t *kv = realloc(t->configs, (size_t)(t->n_configs + 1) * sizeof(*kv));
            if (!kv)
                break;
            t->configs = kv;
            kv[t->n_configs].key = strdup((const char *)sqlite3_column_text(st, 1));
            kv[t->n_configs].value = strdup((const char *)sqlite3_column_text(st, 2));
            t->n_configs++;
        }
    }
    sqlite3_finalize(st);
    for (int i = 0; i < s->n_topics; i++)
        if (s->topics[i].n_configs > 1)
            qsort(s->topics[i].configs, (size_t)s->topics[i].n_configs, sizeof(meta_kv_t), cmp_kv);
    if (s->n_topics > 1) /* qsort must not see the NULL of an empty array */
        qsort(s->topics, (size_t)s->n_topics, sizeof(meta_topic_t), cmp_topic);
    if (sqlite3_prepare_v2(m->db, "SELECT value FROM kv WHERE key='producer_id_next'", -1, &st,
                           NULL) != SQLITE_OK)
        goto fail;
    m->pid_next = m->pid_block_end =
        sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 1000;
    sqlite3_finalize(st);
    return 0;
fail:
    snprintf(errbuf, errbuf_len, "metadata store: %s", sqlite3_errmsg(m->db));
    return ST_E_IO;
}

int meta_open(const char *dir, meta_t **out, char *errbuf, size_t errbuf_len)
{
    meta_t *m = calloc(1, sizeof(*m));
    if (!m)
        return ST_E_NOMEM;
    pthread_mutex_init(&m->db_mu, NULL);
    pthread_mutex_init(&m->snap_mu, NULL);
    char path[4096];
    snprintf(path, sizeof(path), "%s/meta.db", dir);
    int rc = 0;
    if (sqlite3_open_v2(path, &m->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(errbuf, errbuf_len, "cannot open %s: %s", path,
                 m->db ? sqlite3_errmsg(m->db) : "out of memory");
        rc = ST_E_IO;
    }
    if (rc == 0)
        rc = meta__exec(
            m,
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
            "CREATE TABLE IF NOT EXISTS topics(name TEXT PRIMARY KEY, id BLOB NOT NULL,"
            " partitions INTEGER NOT NULL, created_ms INTEGER NOT NULL);"
            "CREATE TABLE IF NOT EXISTS topic_configs(topic TEXT NOT NULL, key TEXT NOT NULL,"
            " value TEXT NOT NULL, PRIMARY KEY(topic, key));"
            "CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
            errbuf, errbuf_len);
    meta_snap_t *s = calloc(1, sizeof(*s));
    if (!s)
        rc = rc ? rc : ST_E_NOMEM;
    else
        atomic_init(&s->refs, 1);
    if (rc == 0)
        rc = load(m, s, errbuf, errbuf_len);
    if (rc == 0)
        rc = meta__users_open(m, errbuf, errbuf_len);
    if (rc != 0) {
        meta_snap_put(s);
        meta__users_close(m);
        sqlite3_close(m->db);
        free(m);
        return rc;
    }
    if ((rc = acls_open(m, errbuf, errbuf_len)) != 0) {
        meta_snap_put(s);
        meta__users_close(m);
        sqlite3_close(m->db);
        free(m);
        return rc;
    }
    publish(m, s);
    *out = m;
    return 0;
}

void meta_close(meta_t *m)
{
    if (!m)
        return;
    meta_snap_put(m->snap);
    acl_set_put(m->acls);
    meta__users_close(m);
    sqlite3_close(m->db);
    pthread_mutex_destroy(&m->db_mu);
    pthread_mutex_destroy(&m->snap_mu);
    free(m);
}

int64_t meta_next_producer_id(meta_t *m)
{
    pthread_mutex_lock(&m->db_mu);
    if (m->pid_next >= m->pid_block_end) {
        int64_t end = m->pid_block_end + PID_BLOCK;
        char sql[128];
        snprintf(sql, sizeof(sql),
                 "INSERT OR REPLACE INTO kv(key, value) VALUES('producer_id_next', %lld)",
                 (long long)end);
        char err[256];
        if (meta__exec(m, sql, err, sizeof(err)) != 0) {
            ST_ERROR("meta", "cannot reserve producer ids: %s", err);
            pthread_mutex_unlock(&m->db_mu);
            return -1;
        }
        m->pid_block_end = end;
    }
    int64_t id = m->pid_next++;
    pthread_mutex_unlock(&m->db_mu);
    return id;
}

/* ---- Mutations (thread pool) ---- */

typedef enum { OP_CREATE, OP_DELETE, OP_PARTITIONS, OP_CONFIGS } op_kind_t;

typedef struct {
    uv_work_t req;
    meta_t *m;
    op_kind_t kind;
    char *name; /* owned */
    int32_t n_partitions;
    meta_kv_t *kvs; /* owned copies */
    int n_kvs;
    bool replace_all;
    meta_done_cb cb;
    void *arg;
    int status;
    char msg[256];
} op_t;

static void op_free(op_t *op)
{
    for (int i = 0; i < op->n_kvs; i++) {
        free(op->kvs[i].key);
        free(op->kvs[i].value);
    }
    free(op->kvs);
    free(op->name);
    free(op);
}

static int sql_step(meta_t *m,
                    const char *sql,
                    const char *a,
                    const void *blob,
                    int64_t i1,
                    int64_t i2,
                    const char *b,
                    const char *c)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(m->db, sql, -1, &st, NULL) != SQLITE_OK)
        return ST_E_IO;
    int n = sqlite3_bind_parameter_count(st), k = 1;
    if (a && k <= n)
        sqlite3_bind_text(st, k++, a, -1, SQLITE_TRANSIENT);
    if (blob && k <= n)
        sqlite3_bind_blob(st, k++, blob, 16, SQLITE_TRANSIENT);
    if (b && k <= n)
        sqlite3_bind_text(st, k++, b, -1, SQLITE_TRANSIENT);
    if (c && k <= n)
        sqlite3_bind_text(st, k++, c, -1, SQLITE_TRANSIENT);
    if (k <= n)
        sqlite3_bind_int64(st, k++, i1);
    if (k <= n)
        sqlite3_bind_int64(st, k++, i2);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : ST_E_IO;
}

/* Apply op to the in-memory snapshot copy t (already in n). */
static int apply_configs(meta_topic_t *t, const op_t *op)
{
    if (op->replace_all) {
        for (int i = 0; i < t->n_configs; i++) {
            free(t->configs[i].key);
            free(t->configs[i].value);
        }
        t->n_configs = 0;
    }
    for (int i = 0; i < op->n_kvs; i++) {
        int j = 0;
        while (j < t->n_configs && strcmp(t->configs[j].key, op->kvs[i].key) != 0)
            j++;
        if (!op->kvs[i].value) { /* delete */
            if (j < t->n_configs) {
                free(t->configs[j].key);
                free(t->configs[j].value);
                t->configs[j] = t->configs[--t->n_configs];
            }
            continue;
        }
        if (j == t->n_configs) {
            meta_kv_t *kv = realloc(t->configs, (size_t)(t->n_configs + 1) * sizeof(*kv));
            if (!kv)
                return ST_E_NOMEM;
            t->configs = kv;
            kv[j].key = strdup(op->kvs[i].key);
            kv[j].value = NULL;
            t->n_configs++;
        }
        free(t->configs[j].value);
        t->configs[j].value = strdup(op->kvs[i].value);
    }
    if (t->n_configs > 1)
        qsort(t->configs, (size_t)t->n_configs, sizeof(meta_kv_t), cmp_kv);
    return 0;
}

static int write_configs(meta_t *m, const meta_topic_t *t)
{
    int rc =
        sql_step(m, "DELETE FROM topic_configs WHERE topic=?", t->name, NULL, 0, 0, NULL, NULL);
    for (int i = 0; rc == 0 && i < t->n_configs; i++)
        rc = sql_step(m, "INSERT INTO topic_configs(topic, key, value) VALUES(?, ?, ?)", t->name,
                      NULL, 0, 0, t->configs[i].key, t->configs[i].value);
    return rc;
}

static void work(uv_work_t *req)
{
    op_t *op = req->data;
    meta_t *m = op->m;
    pthread_mutex_lock(&m->db_mu);
    meta_snap_t *cur = meta_snap_get(m);
    const meta_topic_t *t = meta_snap_find(cur, op->name, strlen(op->name));
    int idx = t ? (int)(t - cur->topics) : -1;
    meta_snap_t *n = NULL;
    int rc = 0;
    if (op->kind == OP_CREATE && t) {
        rc = ST_E_EXISTS;
        snprintf(op->msg, sizeof(op->msg), "Topic '%s' already exists.", op->name);
    } else if (op->kind != OP_CREATE && !t) {
        rc = ST_E_NOTFOUND;
        snprintf(op->msg, sizeof(op->msg), "Topic '%s' does not exist.", op->name);
    } else if (op->kind == OP_PARTITIONS && op->n_partitions <= t->n_partitions) {
        rc = ST_E_INVAL;
        snprintf(op->msg, sizeof(op->msg),
                 "Topic currently has %d partitions, which is higher "
                 "than or equal to the requested %d.",
                 t->n_partitions, op->n_partitions);
    }
    if (rc == 0 && !(n = snap_clone(cur, op->kind == OP_DELETE ? idx : -1)))
        rc = ST_E_NOMEM;
    if (rc == 0)
        rc = meta__exec(m, "BEGIN IMMEDIATE", op->msg, sizeof(op->msg));
    if (rc == 0) {
        meta_topic_t *nt = NULL;
        for (int i = 0; i < n->n_topics; i++)
            if (!strcmp(n->topics[i].name, op->name))
                nt = &n->topics[i];
        switch (op->kind) {
        case OP_CREATE: {
            nt = &n->topics[n->n_topics++];
            memset(nt, 0, sizeof(*nt));
            nt->name = strdup(op->name);
            nt->n_partitions = op->n_partitions;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            nt->created_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
            if (getrandom(nt->id, 16, 0) != 16)
                rc = ST_E_IO;
            nt->id[6] = (uint8_t)((nt->id[6] & 0x0f) | 0x40); /* a v4 uuid */
            nt->id[8] = (uint8_t)((nt->id[8] & 0x3f) | 0x80);
            if (rc == 0)
                rc = sql_step(m,
                              "INSERT INTO topics(name, id, partitions, created_ms) "
                              "VALUES(?, ?, ?, ?)",
                              op->name, nt->id, nt->n_partitions, nt->created_ms, NULL, NULL);
            if (rc == 0)
                rc = apply_configs(nt, op);
            if (rc == 0)
                rc = write_configs(m, nt);
            qsort(n->topics, (size_t)n->n_topics, sizeof(meta_topic_t), cmp_topic);
            break;
        }
        case OP_DELETE:
            rc = sql_step(m, "DELETE FROM topics WHERE name=?", op->name, NULL, 0, 0, NULL, NULL);
            if (rc == 0)
                rc = sql_step(m, "DELETE FROM topic_configs WHERE topic=?", op->name, NULL, 0, 0,
                              NULL, NULL);
            break;
        case OP_PARTITIONS:
            nt->n_partitions = op->n_partitions;
            {
                sqlite3_stmt *st;
                rc = ST_E_IO;
                if (sqlite3_prepare_v2(m->db, "UPDATE topics SET partitions=?1 WHERE name=?2", -1,
                                       &st, NULL) == SQLITE_OK) {
                    sqlite3_bind_int(st, 1, op->n_partitions);
                    sqlite3_bind_text(st, 2, op->name, -1, SQLITE_TRANSIENT);
                    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : ST_E_IO;
                    sqlite3_finalize(st);
                }
            }
            break;
        case OP_CONFIGS:
            rc = apply_configs(nt, op);
            if (rc == 0)
                rc = write_configs(m, nt);
            break;
        }
        if (rc == 0)
            rc = meta__exec(m, "COMMIT", op->msg, sizeof(op->msg));
        if (rc != 0) {
            if (!op->msg[0])
                snprintf(op->msg, sizeof(op->msg), "metadata store: %s", sqlite3_errmsg(m->db));
            char ignore[64];
            (void)meta__exec(m, "ROLLBACK", ignore, sizeof(ignore));
        }
    }
    if (rc == 0) {
        publish(m, n);
        n = NULL;
    }
    meta_snap_put(n);
    meta_snap_put(cur);
    pthread_mutex_unlock(&m->db_mu);
    op->status = rc;
}

static void after(uv_work_t *req, int status)
{
    op_t *op = req->data;
    if (status != 0 && op->status == 0)
        op->status = status;
    op->cb(op->arg, op->status, op->msg[0] ? op->msg : NULL);
    op_free(op);
}

static void submit(meta_t *m,
                   uv_loop_t *loop,
                   op_kind_t kind,
                   const char *name,
                   int32_t n_parts,
                   const meta_kv_t *kvs,
                   int n_kvs,
                   bool replace_all,
                   meta_done_cb cb,
                   void *arg)
{
    op_t *op = calloc(1, sizeof(*op));
    if (!op || !(op->name = strdup(name)) ||
        (n_kvs && !(op->kvs = calloc((size_t)n_kvs, sizeof(meta_kv_t))))) {
        if (op)
            op_free(op);
        cb(arg, ST_E_NOMEM, "out of memory");
        return;
    }
    op->m = m;
    op->kind = kind;
    op->n_partitions = n_parts;
    op->replace_all = replace_all;
    op->cb = cb;
    op->arg = arg;
    for (int i = 0; i < n_kvs; i++, op->n_kvs++) {
        op->kvs[i].key = strdup(kvs[i].key);
        op->kvs[i].value = kvs[i].value ? strdup(kvs[i].value) : NULL;
    }
    op->req.data = op;
    int rc = uv_queue_work(loop, &op->req, work, after);
    if (rc != 0) {
        cb(arg, rc, "cannot queue metadata work");
        op_free(op);
    }
}

void meta_create_topic(
    meta_t *m, uv_loop_t *loop, const meta_topic_spec_t *spec, meta_done_cb cb, void *arg)
{
    submit(m, loop, OP_CREATE, spec->name, spec->n_partitions, spec->configs, spec->n_configs,
           false, cb, arg);
}

void meta_delete_topic(meta_t *m, uv_loop_t *loop, const char *name, meta_done_cb cb, void *arg)
{
    submit(m, loop, OP_DELETE, name, 0, NULL, 0, false, cb, arg);
}

void meta_set_partitions(
    meta_t *m, uv_loop_t *loop, const char *name, int32_t n_partitions, meta_done_cb cb, void *arg)
{
    submit(m, loop, OP_PARTITIONS, name, n_partitions, NULL, 0, false, cb, arg);
}

void meta_set_configs(meta_t *m,
                      uv_loop_t *loop,
                      const char *name,
                      const meta_kv_t *kvs,
                      int n,
                      bool replace_all,
                      meta_done_cb cb,
                      void *arg)
{
    submit(m, loop, OP_CONFIGS, name, 0, kvs, n, replace_all, cb, arg);
}

/* ---- ACLs (core/acl.h) ----
 * One row per binding; the whole table is read back into a new acl_set_t
 * after each change (ACL changes are rare, decisions are not). */

static int acls_load(meta_t *m, acl_set_t **out)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(m->db,
                           "SELECT res_type, pattern, name, principal, host, op, perm FROM acls",
                           -1, &st, NULL) != SQLITE_OK)
        return ST_E_IO;
    acl_entry_t *e = NULL;
    int n = 0, cap = 0, rc = 0;
    while (rc == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = 0;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            acl_entry_t *ne = realloc(e, (size_t)cap * sizeof(*e));
            if (!ne) {
                rc = ST_E_NOMEM;
                break;
            }
            e = ne;
        }
        /* The strings stay valid until the next step: acl_set_new copies them
         * all at once, so keep our own copies meanwhile. */
        e[n] = (acl_entry_t){(int8_t)sqlite3_column_int(st, 0),
                             (int8_t)sqlite3_column_int(st, 1),
                             (int8_t)sqlite3_column_int(st, 5),
                             (int8_t)sqlite3_column_int(st, 6),
                             strdup((const char *)sqlite3_column_text(st, 2)),
                             strdup((const char *)sqlite3_column_text(st, 3)),
                             strdup((const char *)sqlite3_column_text(st, 4))};
        n++;
        if (!e[n - 1].name || !e[n - 1].principal || !e[n - 1].host)
            rc = ST_E_NOMEM;
    }
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc > 0)
        rc = ST_E_IO;
    sqlite3_finalize(st);
    acl_set_t *set = rc == 0 ? acl_set_new(e, n) : NULL;
    for (int i = 0; i < n; i++) {
        free((char *)e[i].name);
        free((char *)e[i].principal);
        free((char *)e[i].host);
    }
    free(e);
    if (rc == 0 && !set)
        rc = ST_E_NOMEM;
    *out = set;
    return rc;
}

static int acls_open(meta_t *m, char *errbuf, size_t errbuf_len)
{
    int rc = meta__exec(m,
                        "CREATE TABLE IF NOT EXISTS acls(res_type INTEGER NOT NULL,"
                        " pattern INTEGER NOT NULL, name TEXT NOT NULL, principal TEXT NOT NULL,"
                        " host TEXT NOT NULL, op INTEGER NOT NULL, perm INTEGER NOT NULL,"
                        " PRIMARY KEY(res_type, pattern, name, principal, host, op, perm));",
                        errbuf, errbuf_len);
    if (rc == 0 && (rc = acls_load(m, &m->acls)) != 0)
        snprintf(errbuf, errbuf_len, "metadata store: cannot load ACLs: %s", st_strerror(rc));
    return rc;
}

acl_set_t *meta_acls_get(meta_t *m)
{
    pthread_mutex_lock(&m->snap_mu);
    acl_set_t *s = acl_set_ref(m->acls);
    pthread_mutex_unlock(&m->snap_mu);
    return s;
}

typedef struct {
    uv_work_t req;
    meta_t *m;
    acl_set_t *add, *del; /* owned copies */
    meta_done_cb cb;
    void *arg;
    int status;
} acl_op_t;

static int acl_row(meta_t *m, const char *sql, const acl_entry_t *e)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(m->db, sql, -1, &st, NULL) != SQLITE_OK)
        return ST_E_IO;
    sqlite3_bind_int(st, 1, e->res_type);
    sqlite3_bind_int(st, 2, e->pattern);
    sqlite3_bind_text(st, 3, e->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, e->principal, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, e->host, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, e->op);
    sqlite3_bind_int(st, 7, e->perm);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : ST_E_IO;
}

static void acl_work(uv_work_t *w)
{
    acl_op_t *op = w->data;
    meta_t *m = op->m;
    char err[256];
    pthread_mutex_lock(&m->db_mu);
    int rc = meta__exec(m, "BEGIN IMMEDIATE", err, sizeof(err));
    int n;
    const acl_entry_t *e = acl_set_entries(op->add, &n);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = acl_row(m, "INSERT OR IGNORE INTO acls VALUES(?, ?, ?, ?, ?, ?, ?)", &e[i]);
    e = acl_set_entries(op->del, &n);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = acl_row(m,
                     "DELETE FROM acls WHERE res_type=? AND pattern=? AND name=? AND principal=?"
                     " AND host=? AND op=? AND perm=?",
                     &e[i]);
    acl_set_t *set = NULL;
    if (rc == 0)
        rc = acls_load(m, &set);
    if (rc == 0)
        rc = meta__exec(m, "COMMIT", err, sizeof(err));
    if (rc != 0) {
        ST_ERROR("meta", "cannot change ACLs: %s", sqlite3_errmsg(m->db));
        (void)meta__exec(m, "ROLLBACK", err, sizeof(err));
        acl_set_put(set);
    } else {
        pthread_mutex_lock(&m->snap_mu);
        acl_set_t *old = m->acls;
        m->acls = set;
        pthread_mutex_unlock(&m->snap_mu);
        acl_set_put(old);
    }
    pthread_mutex_unlock(&m->db_mu);
    op->status = rc;
}

static void acl_after(uv_work_t *w, int status)
{
    acl_op_t *op = w->data;
    if (status != 0 && op->status == 0)
        op->status = status;
    op->cb(op->arg, op->status, op->status ? "cannot write the ACLs to the metadata store" : NULL);
    acl_set_put(op->add);
    acl_set_put(op->del);
    free(op);
}

void meta_acls_change(meta_t *m,
                      uv_loop_t *loop,
                      const acl_entry_t *add,
                      int n_add,
                      const acl_entry_t *del,
                      int n_del,
                      meta_done_cb cb,
                      void *arg)
{
    acl_op_t *op = calloc(1, sizeof(*op));
    if (!op || !(op->add = acl_set_new(add, n_add)) || !(op->del = acl_set_new(del, n_del))) {
        if (op) {
            acl_set_put(op->add);
            free(op);
        }
        cb(arg, ST_E_NOMEM, "out of memory");
        return;
    }
    op->m = m;
    op->cb = cb;
    op->arg = arg;
    op->req.data = op;
    int rc = uv_queue_work(loop, &op->req, acl_work, acl_after);
    if (rc != 0) {
        cb(arg, rc, "cannot queue metadata work");
        acl_set_put(op->add);
        acl_set_put(op->del);
        free(op);
    }
}
