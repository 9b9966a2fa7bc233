/* goffs.c - committed group offsets in SQLite (data/offsets.db).
 * Data path: a group's owning shard submits a batch (goffs_apply) -> work() on the libuv
 * thread pool runs BEGIN IMMEDIATE; upserts/deletes; COMMIT with db_mu held (WAL with
 * synchronous=FULL: the commit is on disk when COMMIT returns) -> after() calls back on the
 * shard's loop, which acknowledges the OffsetCommit.
 * Invariants: 1. the connection is used only with db_mu held, from start-up or a pool thread;
 *             2. the loaded rows never change after goffs_open(). */
#include "core/goffs.h"
#include "core/st_log.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct goffs {
    sqlite3 *db;           /* owned; used with db_mu held */
    pthread_mutex_t db_mu; /* serialises transactions */
    goffs_row_t *loaded;   /* owned: rows read at open */
    int n_loaded;
    goffs_row_t *groups; /* owned: consumer group memberships read at open */
    int n_groups;
};

static int exec(goffs_t *g, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(g->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        ST_ERROR("goffs", "sqlite: %s", err ? err : sqlite3_errmsg(g->db));
        sqlite3_free(err);
        return ST_E_IO;
    }
    return 0;
}

static char *dup_col(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return NULL;
    const char *s = (const char *)sqlite3_column_text(st, col);
    return strdup(s ? s : "");
}

/* A zeroed row appended to *rows (n rows, room for *cap), or NULL when out of memory. */
static goffs_row_t *row_add(goffs_row_t **rows, int *n, int *cap)
{
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 64;
        goffs_row_t *grown = realloc(*rows, (size_t)c * sizeof(*grown));
        if (!grown)
            return NULL;
        *rows = grown;
        *cap = c;
    }
    goffs_row_t *r = &(*rows)[(*n)++];
    memset(r, 0, sizeof(*r));
    return r;
}

static int load(goffs_t *g)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(g->db,
                           "SELECT group_id, topic, partition, committed_offset, leader_epoch,"
                           " metadata, commit_ms FROM group_offsets",
                           -1, &st, NULL) != SQLITE_OK)
        return ST_E_IO;
    int cap = 0, rc = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        goffs_row_t *r = row_add(&g->loaded, &g->n_loaded, &cap);
        if (!r) {
            rc = ST_E_NOMEM;
            break;
        }
        r->kind = GOFFS_PUT;
        r->group = dup_col(st, 0);
        r->topic = dup_col(st, 1);
        r->partition = sqlite3_column_int(st, 2);
        r->offset = sqlite3_column_int64(st, 3);
        r->leader_epoch = sqlite3_column_int(st, 4);
        r->metadata = dup_col(st, 5);
        r->commit_ms = sqlite3_column_int64(st, 6);
        if (!r->group || !r->topic) {
            rc = ST_E_NOMEM;
            break;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

static int load_groups(goffs_t *g)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(g->db, "SELECT group_id, state FROM consumer_groups", -1, &st, NULL) !=
        SQLITE_OK)
        return ST_E_IO;
    int cap = 0, rc = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        goffs_row_t *r = row_add(&g->groups, &g->n_groups, &cap);
        if (!r) {
            rc = ST_E_NOMEM;
            break;
        }
        r->kind = GOFFS_GROUP_PUT;
        r->group = dup_col(st, 0);
        int len = sqlite3_column_bytes(st, 1);
        const void *blob = sqlite3_column_blob(st, 1);
        r->state = malloc((size_t)len + 1);
        r->state_len = len;
        if (!r->group || !r->state) {
            rc = ST_E_NOMEM;
            break;
        }
        if (len > 0)
            memcpy(r->state, blob, (size_t)len);
    }
    sqlite3_finalize(st);
    return rc;
}

int goffs_open(const char *dir, goffs_t **out, char *errbuf, size_t errbuf_len)
{
    goffs_t *g = calloc(1, sizeof(*g));
    if (!g)
        return ST_E_NOMEM;
    pthread_mutex_init(&g->db_mu, NULL);
    char path[4096];
    snprintf(path, sizeof(path), "%s/offsets.db", dir);
    int rc = 0;
    if (sqlite3_open_v2(path, &g->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK)
        rc = ST_E_IO;
    if (rc == 0)
        rc = exec(g, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                     "CREATE TABLE IF NOT EXISTS group_offsets(group_id TEXT NOT NULL,"
                     " topic TEXT NOT NULL, partition INTEGER NOT NULL,"
                     " committed_offset INTEGER NOT NULL, leader_epoch INTEGER NOT NULL,"
                     " metadata TEXT, commit_ms INTEGER NOT NULL,"
                     " PRIMARY KEY(group_id, topic, partition));"
                     "CREATE INDEX IF NOT EXISTS group_offsets_topic ON group_offsets(topic);"
                     "CREATE TABLE IF NOT EXISTS consumer_groups(group_id TEXT PRIMARY KEY,"
                     " state BLOB NOT NULL);");
    if (rc == 0)
        rc = load(g);
    if (rc == 0)
        rc = load_groups(g);
    if (rc != 0) {
        snprintf(errbuf, errbuf_len, "offset store %s: %s", path,
                 g->db ? sqlite3_errmsg(g->db) : "out of memory");
        goffs_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

void goffs_close(goffs_t *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_loaded; i++) {
        free(g->loaded[i].group);
        free(g->loaded[i].topic);
        free(g->loaded[i].metadata);
    }
    free(g->loaded);
    for (int i = 0; i < g->n_groups; i++) {
        free(g->groups[i].group);
        free(g->groups[i].state);
    }
    free(g->groups);
    sqlite3_close(g->db);
    pthread_mutex_destroy(&g->db_mu);
    free(g);
}

const goffs_row_t *goffs_loaded(const goffs_t *g, int *n_rows)
{
    *n_rows = g->n_loaded;
    return g->loaded;
}

const goffs_row_t *goffs_loaded_groups(const goffs_t *g, int *n_rows)
{
    *n_rows = g->n_groups;
    return g->groups;
}

/* ---- Batches (thread pool) ---- */

typedef struct {
    uv_work_t work;
    goffs_t *g;
    const goffs_row_t *rows; /* borrowed until the callback */
    int n;
    goffs_done_cb cb;
    void *arg;
    int status;
} batch_t;

static int put_row(goffs_t *g, const goffs_row_t *r)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(g->db,
                           "INSERT OR REPLACE INTO group_offsets(group_id, topic, partition,"
                           " committed_offset, leader_epoch, metadata, commit_ms)"
                           " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                           -1, &st, NULL) != SQLITE_OK)
        return ST_E_IO;
    sqlite3_bind_text(st, 1, r->group, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, r->partition);
    sqlite3_bind_int64(st, 4, r->offset);
    sqlite3_bind_int(st, 5, r->leader_epoch);
    if (r->metadata)
        sqlite3_bind_text(st, 6, r->metadata, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 6);
    sqlite3_bind_int64(st, 7, r->commit_ms);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : ST_E_IO;
    sqlite3_finalize(st);
    return rc;
}

static int del_row(goffs_t *g, const goffs_row_t *r)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(g->db,
                           "DELETE FROM group_offsets WHERE (?1 IS NULL OR group_id=?1)"
                           " AND (?2 IS NULL OR topic=?2) AND (?3 < 0 OR partition=?3)",
                           -1, &st, NULL) != SQLITE_OK)
        return ST_E_IO;
    if (r->group)
        sqlite3_bind_text(st, 1, r->group, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 1);
    if (r->topic)
        sqlite3_bind_text(st, 2, r->topic, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    sqlite3_bind_int(st, 3, r->partition);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : ST_E_IO;
    sqlite3_finalize(st);
    return rc;
}

static int group_row(goffs_t *g, const goffs_row_t *r)
{
    sqlite3_stmt *st;
    const char *sql = r->kind == GOFFS_GROUP_PUT
                          ? "INSERT OR REPLACE INTO consumer_groups(group_id, state) VALUES(?1, ?2)"
                          : "DELETE FROM consumer_groups WHERE group_id=?1";
    if (sqlite3_prepare_v2(g->db, sql, -1, &st, NULL) != SQLITE_OK)
        return ST_E_IO;
    sqlite3_bind_text(st, 1, r->group, -1, SQLITE_STATIC);
    if (r->kind == GOFFS_GROUP_PUT)
        sqlite3_bind_blob(st, 2, r->state, r->state_len, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : ST_E_IO;
    sqlite3_finalize(st);
    return rc;
}

static void work(uv_work_t *w)
{
    batch_t *b = w->data;
    goffs_t *g = b->g;
    pthread_mutex_lock(&g->db_mu);
    int rc = exec(g, "BEGIN IMMEDIATE");
    for (int i = 0; rc == 0 && i < b->n; i++)
        rc = b->rows[i].kind == GOFFS_PUT   ? put_row(g, &b->rows[i])
             : b->rows[i].kind == GOFFS_DEL ? del_row(g, &b->rows[i])
                                            : group_row(g, &b->rows[i]);
    if (rc == 0)
        rc = exec(g, "COMMIT");
    if (rc != 0) {
        ST_ERROR("goffs", "cannot write %d offset rows: %s", b->n, sqlite3_errmsg(g->db));
        sqlite3_exec(g->db, "ROLLBACK", NULL, NULL, NULL);
    }
    pthread_mutex_unlock(&g->db_mu);
    b->status = rc;
}

static void after(uv_work_t *w, int status)
{
    batch_t *b = w->data;
    if (status != 0 && b->status == 0)
        b->status = status;
    b->cb(b->arg, b->status);
    free(b);
}

void goffs_apply(
    goffs_t *g, uv_loop_t *loop, const goffs_row_t *rows, int n, goffs_done_cb cb, void *arg)
{
    batch_t *b = calloc(1, sizeof(*b));
    if (!b) {
        cb(arg, ST_E_NOMEM);
        return;
    }
    b->g = g;
    b->rows = rows;
    b->n = n;
    b->cb = cb;
    b->arg = arg;
    b->work.data = b;
    int rc = uv_queue_work(loop, &b->work, work, after);
    if (rc != 0) {
        free(b);
        cb(arg, rc);
    }
}
