/* idx_db.c - the index database: schema, migrations and every query.
 * Data path: runs only on the index thread (idx.c), which owns the one
 * connection. Adds commit a segment row and its chunk rows in one
 * transaction after the object is stored; lookups map (topic, partition,
 * offset | timestamp) to the object byte range of one chunk.
 *
 * Schema (version 2):
 *   segments(id, topic, partition, base_offset, last_offset, base_ts, max_ts,
 *            cum_max_ts, size, object_key UNIQUE, checksum, term, state)
 *     UNIQUE (topic, partition, base_offset)          offset -> segment
 *     INDEX  (topic, partition, cum_max_ts, base_offset)  time -> segment
 *   chunks(segment, first_offset, last_offset, first_ts, max_ts, cum_max_ts,
 *          obj_pos, obj_len, raw_len, checksum)
 *     PRIMARY KEY (segment, first_offset) WITHOUT ROWID  offset -> chunk
 *     INDEX (segment, cum_max_ts, first_offset)           time -> chunk
 *   aborted(segment, pid, first_offset, last_offset)    (version 2)
 *     PRIMARY KEY (segment, last_offset) WITHOUT ROWID    the object's txn table
 *   compacted(topic, partition, clean_end)               (version 3)
 *     PRIMARY KEY (topic, partition) WITHOUT ROWID        archive compaction's clean end
 * Beyond ARCHITECTURE.md's columns: chunks.last_offset (gaps between chunks
 * are answered without reading the next row's bytes), max_ts, and cum_max_ts
 * on both tables: the running maximum of max_ts over the partition up to and
 * including the row. Kafka timestamps are not monotonic, but cum_max_ts is,
 * so "first chunk with a record at or after T" = "first row with cum_max_ts
 * >= T" is one index seek.
 *
 * Invariants: 1. the segments of a partition never overlap and are inserted
 *                in offset order, so cum_max_ts never decreases with offset
 *                and the partition's last segment holds its highest offset;
 *             2. every segment has >= 1 chunk, spanning [base, last]. */
#include "index/idx_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Schema and migrations ---- */

/* migrations[i] takes the schema from version i to i + 1. Never edit one that
 * shipped: add the next. */
static const char *const migrations[] = {
    "CREATE TABLE segments("
    " id INTEGER PRIMARY KEY,"
    " topic TEXT NOT NULL,"
    " partition INTEGER NOT NULL,"
    " base_offset INTEGER NOT NULL,"
    " last_offset INTEGER NOT NULL,"
    " base_ts INTEGER NOT NULL,"
    " max_ts INTEGER NOT NULL,"
    " cum_max_ts INTEGER NOT NULL,"
    " size INTEGER NOT NULL,"
    " object_key TEXT NOT NULL UNIQUE,"
    " checksum INTEGER NOT NULL,"
    " term INTEGER NOT NULL,"
    " state INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX segments_offset ON segments(topic, partition, base_offset);"
    "CREATE INDEX segments_time ON segments(topic, partition, cum_max_ts, base_offset);"
    "CREATE TABLE chunks("
    " segment INTEGER NOT NULL,"
    " first_offset INTEGER NOT NULL,"
    " last_offset INTEGER NOT NULL,"
    " first_ts INTEGER NOT NULL,"
    " max_ts INTEGER NOT NULL,"
    " cum_max_ts INTEGER NOT NULL,"
    " obj_pos INTEGER NOT NULL,"
    " obj_len INTEGER NOT NULL,"
    " raw_len INTEGER NOT NULL,"
    " checksum INTEGER NOT NULL,"
    " PRIMARY KEY (segment, first_offset)) WITHOUT ROWID;"
    "CREATE INDEX chunks_time ON chunks(segment, cum_max_ts, first_offset);",
    /* 2: the aborted transactions of each object (its txn table). */
    "CREATE TABLE aborted("
    " segment INTEGER NOT NULL,"
    " pid INTEGER NOT NULL,"
    " first_offset INTEGER NOT NULL,"
    " last_offset INTEGER NOT NULL,"
    " PRIMARY KEY (segment, last_offset)) WITHOUT ROWID;",
    /* 3: how far each partition's archive was compacted (tiering/tier_acomp.c). */
    "CREATE TABLE compacted("
    " topic TEXT NOT NULL,"
    " partition INTEGER NOT NULL,"
    " clean_end INTEGER NOT NULL,"
    " PRIMARY KEY (topic, partition)) WITHOUT ROWID;",
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))
_Static_assert(N_MIGRATIONS == IDX_SCHEMA_VERSION, "one migration per schema version");

/* ---- Statements ---- */

#define SEG_COLS                                                                                   \
    "id, topic, partition, base_offset, last_offset, base_ts, max_ts, size, object_key, "          \
    "checksum, term, state, cum_max_ts"
#define CHUNK_COLS                                                                                 \
    "first_offset, last_offset, first_ts, max_ts, obj_pos, obj_len, raw_len, checksum, "           \
    "cum_max_ts"

#define STMTS(X)                                                                                   \
    X(BEGIN, "BEGIN IMMEDIATE")                                                                    \
    X(COMMIT, "COMMIT")                                                                            \
    X(ROLLBACK, "ROLLBACK")                                                                        \
    X(SEG_LAST, "SELECT " SEG_COLS " FROM segments WHERE topic = ?1 AND partition = ?2"            \
                " ORDER BY base_offset DESC LIMIT 1")                                              \
    X(SEG_FIRST, "SELECT " SEG_COLS " FROM segments WHERE topic = ?1 AND partition = ?2"           \
                 " ORDER BY base_offset LIMIT 1")                                                  \
    X(SEG_AT, "SELECT " SEG_COLS " FROM segments WHERE topic = ?1 AND partition = ?2"              \
              " AND base_offset = ?3")                                                             \
    X(SEG_FLOOR, "SELECT " SEG_COLS " FROM segments WHERE topic = ?1 AND partition = ?2"           \
                 " AND base_offset <= ?3 ORDER BY base_offset DESC LIMIT 1")                       \
    X(SEG_CEIL, "SELECT " SEG_COLS " FROM segments WHERE topic = ?1 AND partition = ?2"            \
                " AND base_offset > ?3 ORDER BY base_offset LIMIT 1")                              \
    X(SEG_TIME, "SELECT " SEG_COLS " FROM segments WHERE topic = ?1 AND partition = ?2"            \
                " AND cum_max_ts >= ?3 ORDER BY cum_max_ts, base_offset LIMIT 1")                  \
    X(SEG_LIST, "SELECT " SEG_COLS " FROM segments WHERE topic = ?1 AND partition = ?2"            \
                " AND base_offset >= ?3 ORDER BY base_offset LIMIT ?4")                            \
    X(SEG_BELOW, "SELECT id, object_key, cum_max_ts FROM segments WHERE topic = ?1"                \
                 " AND partition = ?2"                                                             \
                 " AND base_offset < ?3 AND last_offset < ?3 ORDER BY base_offset")                \
    X(SEG_OF_PART, "SELECT id, object_key FROM segments WHERE topic = ?1 AND partition = ?2"       \
                   " ORDER BY base_offset")                                                        \
    X(SEG_OF_TOPIC,                                                                                \
      "SELECT id, object_key FROM segments WHERE topic = ?1 ORDER BY partition, base_offset")      \
    X(SEG_KEYS,                                                                                    \
      "SELECT object_key FROM segments WHERE object_key > ?1 ORDER BY object_key LIMIT ?2")        \
    X(SEG_INSERT,                                                                                  \
      "INSERT INTO segments(topic, partition, base_offset, last_offset, base_ts, max_ts,"          \
      " cum_max_ts, size, object_key, checksum, term, state)"                                      \
      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")                               \
    X(SEG_DELETE, "DELETE FROM segments WHERE id = ?1")                                            \
    X(CHUNK_FLOOR, "SELECT " CHUNK_COLS " FROM chunks WHERE segment = ?1 AND first_offset <= ?2"   \
                   " ORDER BY first_offset DESC LIMIT 1")                                          \
    X(CHUNK_CEIL, "SELECT " CHUNK_COLS " FROM chunks WHERE segment = ?1 AND first_offset > ?2"     \
                  " ORDER BY first_offset LIMIT 1")                                                \
    X(CHUNK_TIME, "SELECT " CHUNK_COLS " FROM chunks WHERE segment = ?1 AND cum_max_ts >= ?2"      \
                  " ORDER BY cum_max_ts, first_offset LIMIT 1")                                    \
    X(CHUNK_INSERT,                                                                                \
      "INSERT INTO chunks(segment, first_offset, last_offset, first_ts, max_ts, cum_max_ts,"       \
      " obj_pos, obj_len, raw_len, checksum) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")    \
    X(CHUNK_DELETE, "DELETE FROM chunks WHERE segment = ?1")                                       \
    X(ABORTED_INSERT, "INSERT INTO aborted(segment, pid, first_offset, last_offset)"               \
                      " VALUES (?1, ?2, ?3, ?4)")                                                  \
    X(ABORTED_DELETE, "DELETE FROM aborted WHERE segment = ?1")                                    \
    X(SEG_BY_KEY, "SELECT " SEG_COLS " FROM segments WHERE object_key = ?1")                       \
    X(SEG_SET_CUM, "UPDATE segments SET cum_max_ts = ?2 WHERE id = ?1")                            \
    X(CHUNK_LIST, "SELECT first_offset, max_ts, cum_max_ts FROM chunks WHERE segment = ?1"         \
                  " ORDER BY first_offset")                                                        \
    X(CHUNK_SET_CUM, "UPDATE chunks SET cum_max_ts = ?3 WHERE segment = ?1 AND first_offset = ?2") \
    X(CLEAN_GET, "SELECT clean_end FROM compacted WHERE topic = ?1 AND partition = ?2")            \
    X(CLEAN_SET, "INSERT INTO compacted(topic, partition, clean_end) VALUES (?1, ?2, ?3)"          \
                 " ON CONFLICT(topic, partition) DO UPDATE SET clean_end = excluded.clean_end")    \
    X(CLEAN_DROP_PART, "DELETE FROM compacted WHERE topic = ?1 AND partition = ?2")                \
    X(CLEAN_DROP_TOPIC, "DELETE FROM compacted WHERE topic = ?1")                                  \
    X(ABORTED_LIST, "SELECT a.pid, a.first_offset, a.last_offset FROM segments s"                  \
                    " JOIN aborted a ON a.segment = s.id WHERE s.topic = ?1 AND s.partition = ?2"  \
                    " ORDER BY s.base_offset")

enum {
#define STMT_ENUM(name, sql) S_##name,
    STMTS(STMT_ENUM)
#undef STMT_ENUM
        S__COUNT
};

static const char *const stmt_sql[] = {
#define STMT_SQL(name, sql) sql,
    STMTS(STMT_SQL)
#undef STMT_SQL
};

const idx__query_t idx__queries[] = {
#define STMT_Q(name, sql) {#name, sql},
    STMTS(STMT_Q)
#undef STMT_Q
        {NULL, NULL},
};

struct idx__db {
    sqlite3 *db;
    sqlite3_stmt *st[S__COUNT];
};

/* ---- Errors ---- */

static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_FORMAT:
        return ST_E_CORRUPT;
    case SQLITE_FULL:
        return ST_E_NOSPC;
    case SQLITE_NOMEM:
        return ST_E_NOMEM;
    case SQLITE_CONSTRAINT:
        return ST_E_EXISTS;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return ST_E_AGAIN;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
    case SQLITE_AUTH:
        return ST_E_IO;
    default:
        return ST_E_IO;
    }
}

/* ---- Open, migrate, close ---- */

static int db_fail(sqlite3 *db, int rc, const char *path, const char *what, char *eb, size_t ebl)
{
    int err = map_rc(rc);
    if (eb && ebl)
        snprintf(eb, ebl, "index: %s: %s: %s%s", path, what, db ? sqlite3_errmsg(db) : "",
                 err == ST_E_CORRUPT ? " (move it away and rebuild the index from the bucket)"
                                     : "");
    return err ? err : ST_E_IO;
}

static int migrate(sqlite3 *db, const char *path, char *eb, size_t ebl)
{
    int rc = sqlite3_exec(db,
                          "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL);"
                          "BEGIN IMMEDIATE;",
                          NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return db_fail(db, rc, path, "schema", eb, ebl);
    sqlite3_stmt *q = NULL;
    int version = 0;
    bool has_row = false;
    rc = sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &q, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        version = sqlite3_column_int(q, 0);
        has_row = true;
        rc = SQLITE_DONE;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        int err = db_fail(db, rc, path, "schema version", eb, ebl);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return err;
    }
    if (version < 0 || version > N_MIGRATIONS) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        if (eb && ebl)
            snprintf(eb, ebl, "index: %s: schema version %d is not one this build knows (1..%d)",
                     path, version, N_MIGRATIONS);
        return ST_E_INVAL;
    }
    for (int v = version; v < N_MIGRATIONS; v++) {
        if ((rc = sqlite3_exec(db, migrations[v], NULL, NULL, NULL)) != SQLITE_OK) {
            int err = db_fail(db, rc, path, "migration", eb, ebl);
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return err;
        }
    }
    char set[96];
    snprintf(set, sizeof set,
             has_row ? "UPDATE schema_version SET version = %d;"
                     : "INSERT INTO schema_version(version) VALUES (%d);",
             N_MIGRATIONS);
    if ((rc = sqlite3_exec(db, set, NULL, NULL, NULL)) != SQLITE_OK ||
        (rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK) {
        int err = db_fail(db, rc, path, "schema version", eb, ebl);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return err;
    }
    return 0;
}

int idx__db_open(const char *path, idx__db_t **out, char *eb, size_t ebl)
{
    idx__db_t *d = calloc(1, sizeof *d);
    if (!d)
        return ST_E_NOMEM;
    /* One thread uses the connection: no SQLite mutexes needed. */
    int rc = sqlite3_open_v2(
        path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    int err = 0;
    if (rc != SQLITE_OK) {
        err = db_fail(d->db, rc, path, "open", eb, ebl);
        goto fail;
    }
    sqlite3_extended_result_codes(d->db, 1);
    sqlite3_busy_timeout(d->db, 5000); /* another process (the CLI) may hold a lock */
    /* WAL: readers never block the writer; FULL: a commit survives power
     * loss, because local retention deletes segments once their row commits. */
    sqlite3_stmt *q = NULL;
    rc = sqlite3_prepare_v2(d->db, "PRAGMA journal_mode=WAL", -1, &q, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(q);
    bool is_wal = rc == SQLITE_ROW && sqlite3_column_text(q, 0) &&
                  strcmp((const char *)sqlite3_column_text(q, 0), "wal") == 0;
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW) {
        err = db_fail(d->db, rc, path, "journal_mode", eb, ebl);
        goto fail;
    }
    if (!is_wal) {
        if (eb && ebl)
            snprintf(eb, ebl, "index: %s: cannot switch to WAL mode", path);
        err = ST_E_IO;
        goto fail;
    }
    rc = sqlite3_exec(d->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        err = db_fail(d->db, rc, path, "synchronous", eb, ebl);
        goto fail;
    }
    if ((err = migrate(d->db, path, eb, ebl)) != 0)
        goto fail;
    for (int i = 0; i < S__COUNT; i++) {
        rc = sqlite3_prepare_v3(d->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &d->st[i], NULL);
        if (rc != SQLITE_OK) {
            err = db_fail(d->db, rc, path, "prepare", eb, ebl);
            goto fail;
        }
    }
    *out = d;
    return 0;
fail:
    idx__db_close(d);
    return err;
}

void idx__db_close(idx__db_t *d)
{
    if (!d)
        return;
    for (int i = 0; i < S__COUNT; i++)
        sqlite3_finalize(d->st[i]);
    sqlite3_close(d->db);
    free(d);
}

/* ---- Row helpers ---- */

/* Reset and bind (topic, partition) to a statement; returns it. */
static sqlite3_stmt *stmt_tp(idx__db_t *d, int which, const char *topic, int32_t partition)
{
    sqlite3_stmt *s = d->st[which];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (topic)
        sqlite3_bind_text(s, 1, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, partition);
    return s;
}

static int step_done(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : map_rc(rc);
}

/* A segment row as read by SEG_COLS; strings are valid until the next step
 * or reset of s. Also returns id and cum_max_ts. */
static void read_seg(sqlite3_stmt *s, idx_segment_t *g, int64_t *id, int64_t *cum)
{
    *id = sqlite3_column_int64(s, 0);
    g->topic = (const char *)sqlite3_column_text(s, 1);
    g->partition = sqlite3_column_int(s, 2);
    g->base_offset = sqlite3_column_int64(s, 3);
    g->last_offset = sqlite3_column_int64(s, 4);
    g->base_ts = sqlite3_column_int64(s, 5);
    g->max_ts = sqlite3_column_int64(s, 6);
    g->size = sqlite3_column_int64(s, 7);
    g->object_key = (const char *)sqlite3_column_text(s, 8);
    g->checksum = (uint32_t)sqlite3_column_int64(s, 9);
    g->term = sqlite3_column_int(s, 10);
    g->state = sqlite3_column_int(s, 11);
    if (cum)
        *cum = sqlite3_column_int64(s, 12);
}

static void read_chunk(sqlite3_stmt *s, idx_chunk_t *c)
{
    c->first_offset = sqlite3_column_int64(s, 0);
    c->last_offset = sqlite3_column_int64(s, 1);
    c->first_ts = sqlite3_column_int64(s, 2);
    c->max_ts = sqlite3_column_int64(s, 3);
    c->obj_pos = sqlite3_column_int64(s, 4);
    c->obj_len = sqlite3_column_int64(s, 5);
    c->raw_len = sqlite3_column_int64(s, 6);
    c->checksum = (uint32_t)sqlite3_column_int64(s, 7);
}

/* Run a one-row segment query; on a row, copy it into op->loc.seg.
 * @return 1 (row), 0 (none) or a negative error. */
static int seg_one(idx__op_t *op, sqlite3_stmt *s, int64_t *id)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(s);
        return 0;
    }
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        return map_rc(rc);
    }
    read_seg(s, &op->loc.seg, id, NULL);
    free(op->loc_topic);
    free(op->loc_key);
    op->loc_topic = strdup(op->loc.seg.topic ? op->loc.seg.topic : "");
    op->loc_key = strdup(op->loc.seg.object_key ? op->loc.seg.object_key : "");
    op->loc.seg.topic = op->loc_topic;
    op->loc.seg.object_key = op->loc_key;
    sqlite3_reset(s);
    return op->loc_topic && op->loc_key ? 1 : ST_E_NOMEM;
}

/* Run a one-row chunk query of segment id with one i64 argument. */
static int chunk_one(idx__db_t *d, int which, int64_t id, int64_t v, idx_chunk_t *out)
{
    sqlite3_stmt *s = d->st[which];
    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, v);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        read_chunk(s, out);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : map_rc(rc);
}

static int keys_push(idx__op_t *op, const char *key)
{
    if (op->n_keys == op->keys_cap) {
        size_t cap = op->keys_cap ? op->keys_cap * 2 : 16;
        char **k = realloc(op->keys, cap * sizeof *k);
        if (!k)
            return ST_E_NOMEM;
        op->keys = k;
        op->keys_cap = cap;
    }
    if (!(op->keys[op->n_keys] = strdup(key ? key : "")))
        return ST_E_NOMEM;
    op->n_keys++;
    return 0;
}

/* ---- Add ---- */

/* Insert the rows of one object: r->seg with r->chunks and r->aborted (the
 * add's inputs or a replacement's). cum is the cum_max_ts of the partition's
 * row before it (INT64_MIN for none): each chunk row stores the running
 * maximum of max_ts from there on, the segment row that of its last chunk,
 * so a time lookup's "first row with cum_max_ts >= T" holds at once. The add
 * appends after the last row; after a replace, fix_cum corrects the rows
 * that follow the replaced ones. */
static int insert_rows(idx__db_t *d, const idx__repl_t *r, int64_t cum)
{
    const idx_segment_t *g = &r->seg;
    const idx_chunk_t *chunks = r->chunks;
    size_t n_chunks = r->n_chunks;
    int64_t seg_cum = cum;
    for (size_t i = 0; i < n_chunks; i++)
        if (chunks[i].max_ts > seg_cum)
            seg_cum = chunks[i].max_ts;
    sqlite3_stmt *s = stmt_tp(d, S_SEG_INSERT, g->topic, g->partition);
    sqlite3_bind_int64(s, 3, g->base_offset);
    sqlite3_bind_int64(s, 4, g->last_offset);
    sqlite3_bind_int64(s, 5, g->base_ts);
    sqlite3_bind_int64(s, 6, g->max_ts);
    sqlite3_bind_int64(s, 7, seg_cum);
    sqlite3_bind_int64(s, 8, g->size);
    sqlite3_bind_text(s, 9, g->object_key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 10, g->checksum);
    sqlite3_bind_int(s, 11, g->term);
    sqlite3_bind_int(s, 12, IDX_SEG_LIVE);
    int rc = step_done(s);
    if (rc != 0)
        return rc;
    int64_t id = sqlite3_last_insert_rowid(d->db);
    s = d->st[S_CHUNK_INSERT];
    for (size_t i = 0; i < n_chunks && rc == 0; i++) {
        const idx_chunk_t *c = &chunks[i];
        if (c->max_ts > cum)
            cum = c->max_ts;
        sqlite3_reset(s);
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int64(s, 2, c->first_offset);
        sqlite3_bind_int64(s, 3, c->last_offset);
        sqlite3_bind_int64(s, 4, c->first_ts);
        sqlite3_bind_int64(s, 5, c->max_ts);
        sqlite3_bind_int64(s, 6, cum);
        sqlite3_bind_int64(s, 7, c->obj_pos);
        sqlite3_bind_int64(s, 8, c->obj_len);
        sqlite3_bind_int64(s, 9, c->raw_len);
        sqlite3_bind_int64(s, 10, c->checksum);
        rc = step_done(s);
    }
    s = d->st[S_ABORTED_INSERT];
    for (size_t i = 0; i < r->n_aborted && rc == 0; i++) {
        sqlite3_reset(s);
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int64(s, 2, r->aborted[i].pid);
        sqlite3_bind_int64(s, 3, r->aborted[i].first_offset);
        sqlite3_bind_int64(s, 4, r->aborted[i].last_offset);
        rc = step_done(s);
    }
    return rc;
}

static int do_add_locked(idx__db_t *d, idx__op_t *op)
{
    const idx_segment_t *g = &op->seg;
    sqlite3_stmt *s = stmt_tp(d, S_SEG_LAST, g->topic, g->partition);
    int64_t cum = INT64_MIN, last_id;
    idx_segment_t last;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        read_seg(s, &last, &last_id, &cum);
        if (g->base_offset <= last.last_offset) {
            sqlite3_reset(s);
            /* The same row again (a retried add) is a success. */
            s = stmt_tp(d, S_SEG_AT, g->topic, g->partition);
            sqlite3_bind_int64(s, 3, g->base_offset);
            idx_segment_t at;
            int64_t at_id;
            bool is_same = false;
            if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                read_seg(s, &at, &at_id, NULL);
                is_same = at.last_offset == g->last_offset && at.object_key &&
                          strcmp(at.object_key, g->object_key) == 0;
            }
            sqlite3_reset(s);
            if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return map_rc(rc);
            return is_same ? 1 : ST_E_EXISTS;
        }
    } else if (rc != SQLITE_DONE) {
        sqlite3_reset(s);
        return map_rc(rc);
    }
    sqlite3_reset(s);
    const idx__repl_t rows = {.seg = *g,
                              .chunks = op->chunks,
                              .n_chunks = op->n_chunks,
                              .aborted = op->aborted,
                              .n_aborted = op->n_aborted};
    return insert_rows(d, &rows, cum);
}

/* Run body inside BEGIN IMMEDIATE .. COMMIT; a body result > 0 means "nothing
 * to write" (rolled back, status 0). */
static int in_txn(idx__db_t *d, idx__op_t *op, int (*body)(idx__db_t *, idx__op_t *))
{
    int rc = step_done(d->st[S_BEGIN]);
    if (rc != 0)
        return rc;
    rc = body(d, op);
    if (rc == 0)
        rc = step_done(d->st[S_COMMIT]);
    if (rc != 0) {
        if (!sqlite3_get_autocommit(d->db))
            (void)step_done(d->st[S_ROLLBACK]);
        return rc > 0 ? 0 : rc;
    }
    return 0;
}

/* ---- Lookups ---- */

static int do_lookup_offset(idx__db_t *d, idx__op_t *op)
{
    int64_t off = op->arg_i64, id;
    sqlite3_stmt *s = stmt_tp(d, S_SEG_FLOOR, op->topic, op->partition);
    sqlite3_bind_int64(s, 3, off);
    int rc = seg_one(op, s, &id);
    if (rc <= 0)
        return rc == 0 ? ST_E_RANGE : rc;
    if (op->loc.seg.last_offset >= off) {
        rc = chunk_one(d, S_CHUNK_FLOOR, id, off, &op->loc.chunk);
        if (rc < 0)
            return rc;
        if (rc == 1 && op->loc.chunk.last_offset >= off)
            return 0;
        /* In a gap between two chunks of this segment. */
        rc = chunk_one(d, S_CHUNK_CEIL, id, off, &op->loc.chunk);
        return rc < 0 ? rc : rc == 1 ? 0 : ST_E_CORRUPT;
    }
    /* Past this segment: the next segment's first chunk, if any. */
    s = stmt_tp(d, S_SEG_CEIL, op->topic, op->partition);
    sqlite3_bind_int64(s, 3, off);
    if ((rc = seg_one(op, s, &id)) <= 0)
        return rc == 0 ? ST_E_RANGE : rc;
    rc = chunk_one(d, S_CHUNK_CEIL, id, INT64_MIN, &op->loc.chunk);
    return rc < 0 ? rc : rc == 1 ? 0 : ST_E_CORRUPT;
}

static int do_lookup_time(idx__db_t *d, idx__op_t *op)
{
    int64_t id;
    sqlite3_stmt *s = stmt_tp(d, S_SEG_TIME, op->topic, op->partition);
    sqlite3_bind_int64(s, 3, op->arg_i64);
    int rc = seg_one(op, s, &id);
    if (rc <= 0)
        return rc == 0 ? ST_E_RANGE : rc;
    rc = chunk_one(d, S_CHUNK_TIME, id, op->arg_i64, &op->loc.chunk);
    return rc < 0 ? rc : rc == 1 ? 0 : ST_E_CORRUPT; /* the segment's cum says one exists */
}

static int do_edge_offset(idx__db_t *d, idx__op_t *op, bool is_high)
{
    int64_t id;
    sqlite3_stmt *s = stmt_tp(d, is_high ? S_SEG_LAST : S_SEG_FIRST, op->topic, op->partition);
    int rc = seg_one(op, s, &id);
    if (rc < 0)
        return rc;
    op->out_i64 = rc == 0 ? -1 : is_high ? op->loc.seg.last_offset : op->loc.seg.base_offset;
    return 0;
}

static int do_list_segments(idx__db_t *d, idx__op_t *op)
{
    sqlite3_stmt *s = stmt_tp(d, S_SEG_LIST, op->topic, op->partition);
    sqlite3_bind_int64(s, 3, op->arg_i64);
    sqlite3_bind_int64(s, 4, (int64_t)op->limit + 1);
    op->segs = calloc(op->limit, sizeof *op->segs);
    op->seg_strs = calloc(op->limit * 2, sizeof *op->seg_strs);
    if (!op->segs || !op->seg_strs)
        return ST_E_NOMEM;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        idx_segment_t g;
        int64_t id;
        read_seg(s, &g, &id, NULL);
        if (op->n_segs == op->limit) {
            op->has_more = true;
            op->out_i64 = g.base_offset;
            break;
        }
        char **strs = &op->seg_strs[op->n_segs * 2];
        strs[0] = strdup(g.topic ? g.topic : "");
        strs[1] = strdup(g.object_key ? g.object_key : "");
        op->n_segs++; /* counted before the check so op_free frees both */
        if (!strs[0] || !strs[1]) {
            sqlite3_reset(s);
            return ST_E_NOMEM;
        }
        g.topic = strs[0];
        g.object_key = strs[1];
        op->segs[op->n_segs - 1] = g;
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : map_rc(rc);
}

static int do_list_keys(idx__db_t *d, idx__op_t *op)
{
    sqlite3_stmt *s = d->st[S_SEG_KEYS];
    sqlite3_reset(s);
    sqlite3_bind_text(s, 1, op->after ? op->after : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (int64_t)op->limit + 1);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (op->n_keys == op->limit) {
            op->has_more = true;
            break;
        }
        int err = keys_push(op, (const char *)sqlite3_column_text(s, 0));
        if (err != 0) {
            sqlite3_reset(s);
            return err;
        }
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : map_rc(rc);
}

static int cmp_aborted(const void *x, const void *y)
{
    const idx_aborted_t *a = x, *b = y;
    return (a->last_offset > b->last_offset) - (a->last_offset < b->last_offset);
}

static int do_list_aborted(idx__db_t *d, idx__op_t *op)
{
    sqlite3_stmt *s = stmt_tp(d, S_ABORTED_LIST, op->topic, op->partition);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (op->n_aborted == op->aborted_cap) {
            size_t cap = op->aborted_cap ? op->aborted_cap * 2 : 16;
            idx_aborted_t *n = realloc(op->aborted, cap * sizeof(*n));
            if (!n) {
                sqlite3_reset(s);
                return ST_E_NOMEM;
            }
            op->aborted = n;
            op->aborted_cap = cap;
        }
        op->aborted[op->n_aborted++] = (idx_aborted_t){
            sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1), sqlite3_column_int64(s, 2)};
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return map_rc(rc);
    /* Segments come in offset order; within one, by the primary key. */
    if (op->n_aborted > 1)
        qsort(op->aborted, op->n_aborted, sizeof(*op->aborted), cmp_aborted);
    return 0;
}

/* ---- Running maxima (cum_max_ts) ---- */

/* Recompute the running maximum of max_ts of the chunks of segment id,
 * from *cum on; *cum becomes the segment's. */
static int fix_seg_cum(idx__db_t *d, int64_t id, int64_t *cum)
{
    /* Collect first (an UPDATE must not run while the SELECT steps). */
    int64_t(*v)[3] = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s = d->st[S_CHUNK_LIST];
    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, id);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            int64_t(*nv)[3] = realloc(v, cap * sizeof(*nv));
            if (!nv) {
                sqlite3_reset(s);
                free(v);
                return ST_E_NOMEM;
            }
            v = nv;
        }
        v[n][0] = sqlite3_column_int64(s, 0);
        v[n][1] = sqlite3_column_int64(s, 1);
        v[n][2] = sqlite3_column_int64(s, 2);
        n++;
    }
    sqlite3_reset(s);
    rc = rc == SQLITE_DONE ? 0 : map_rc(rc);
    s = d->st[S_CHUNK_SET_CUM];
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (v[i][1] > *cum)
            *cum = v[i][1];
        if (v[i][2] == *cum)
            continue;
        sqlite3_reset(s);
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int64(s, 2, v[i][0]);
        sqlite3_bind_int64(s, 3, *cum);
        rc = step_done(s);
    }
    free(v);
    if (rc == 0) {
        s = d->st[S_SEG_SET_CUM];
        sqlite3_reset(s);
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int64(s, 2, *cum);
        rc = step_done(s);
    }
    return rc;
}

/* Where fix_cum starts: the rows after base offset `after` are brought up
 * to date, entered with cum (what the rows up to `after` hold now);
 * stored_prev is what they held before the change (the stored rows after
 * them were computed from it). */
typedef struct {
    int64_t after, cum, stored_prev;
} cum_from_t;

/* The running maxima of op's partition from the row after at.after on.
 * op->repl (in offset order) are rows just inserted, old_cum[i] the
 * cum_max_ts of the row op->repl[i] replaced. A row after every changed one
 * that is entered with the same running maximum as before keeps its values,
 * and so does everything after it: stop there. */
static int fix_cum(idx__db_t *d, const idx__op_t *op, cum_from_t at, const int64_t *old_cum)
{
    int64_t cum = at.cum, stored_prev = at.stored_prev;
    size_t r = 0;
    for (int64_t from = at.after;;) {
        int64_t id, stored;
        idx_segment_t g;
        sqlite3_stmt *s = stmt_tp(d, S_SEG_CEIL, op->topic, op->partition);
        sqlite3_bind_int64(s, 3, from);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
            read_seg(s, &g, &id, &stored);
        sqlite3_reset(s);
        if (rc == SQLITE_DONE)
            return 0;
        if (rc != SQLITE_ROW)
            return map_rc(rc);
        while (r < op->n_repl && op->repl[r].seg.base_offset < g.base_offset)
            r++;
        bool is_new = r < op->n_repl && op->repl[r].seg.base_offset == g.base_offset;
        if (!is_new && r == op->n_repl && cum == stored_prev)
            return 0;
        stored_prev = is_new ? old_cum[r] : stored;
        from = g.base_offset;
        if ((rc = fix_seg_cum(d, id, &cum)) != 0)
            return rc;
    }
}

/* ---- Deletes ---- */

/* Collect (id, key[, cum_max_ts]) rows of a statement, then delete those
 * segments; *last_cum (when not NULL) gets the cum_max_ts of the last row. */
static int delete_rows(idx__db_t *d, idx__op_t *op, sqlite3_stmt *s, int64_t *last_cum)
{
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    int rc, err = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *p = realloc(ids, cap * sizeof *p);
            if (!p) {
                err = ST_E_NOMEM;
                break;
            }
            ids = p;
        }
        ids[n++] = sqlite3_column_int64(s, 0);
        if (last_cum)
            *last_cum = sqlite3_column_int64(s, 2);
        if ((err = keys_push(op, (const char *)sqlite3_column_text(s, 1))) != 0)
            break;
    }
    sqlite3_reset(s);
    if (!err && rc != SQLITE_DONE)
        err = map_rc(rc);
    for (size_t i = 0; i < n && !err; i++) {
        sqlite3_stmt *c = d->st[S_CHUNK_DELETE];
        sqlite3_reset(c);
        sqlite3_bind_int64(c, 1, ids[i]);
        if ((err = step_done(c)) != 0)
            break;
        sqlite3_stmt *a = d->st[S_ABORTED_DELETE];
        sqlite3_reset(a);
        sqlite3_bind_int64(a, 1, ids[i]);
        if ((err = step_done(a)) != 0)
            break;
        sqlite3_stmt *g = d->st[S_SEG_DELETE];
        sqlite3_reset(g);
        sqlite3_bind_int64(g, 1, ids[i]);
        err = step_done(g);
    }
    free(ids);
    return err;
}

/* The rows left were entered with the running maximum of the deleted ones:
 * they start again from nothing (a timestamp only the deleted rows reached
 * would otherwise send time lookups to chunks with no record that late). */
static int do_delete_below_locked(idx__db_t *d, idx__op_t *op)
{
    sqlite3_stmt *s = stmt_tp(d, S_SEG_BELOW, op->topic, op->partition);
    sqlite3_bind_int64(s, 3, op->arg_i64);
    cum_from_t at = {-1, INT64_MIN, INT64_MIN};
    int rc = delete_rows(d, op, s, &at.stored_prev);
    if (rc == 0 && op->n_keys > 0)
        rc = fix_cum(d, op, at, NULL);
    return rc;
}

static int do_drop_locked(idx__db_t *d, idx__op_t *op)
{
    sqlite3_stmt *s = op->partition >= 0 ? stmt_tp(d, S_SEG_OF_PART, op->topic, op->partition)
                                         : stmt_tp(d, S_SEG_OF_TOPIC, op->topic, 0);
    int rc = delete_rows(d, op, s, NULL);
    if (rc == 0)
        rc = step_done(op->partition >= 0 ? stmt_tp(d, S_CLEAN_DROP_PART, op->topic, op->partition)
                                          : stmt_tp(d, S_CLEAN_DROP_TOPIC, op->topic, 0));
    return rc;
}

/* ---- Archive compaction: the switch ---- */

/* Delete segment id with its chunks and aborted rows. */
static int delete_seg(idx__db_t *d, int64_t id)
{
    static const int which[] = {S_CHUNK_DELETE, S_ABORTED_DELETE, S_SEG_DELETE};
    for (int i = 0; i < 3; i++) {
        sqlite3_stmt *s = d->st[which[i]];
        sqlite3_reset(s);
        sqlite3_bind_int64(s, 1, id);
        int rc = step_done(s);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Insert the replacement r after its old row was deleted: the running
 * maxima go on from the row before it (the rows after it, replaced or not,
 * fix_cum brings up to date once all are in). */
static int insert_repl(idx__db_t *d, idx__op_t *op, const idx__repl_t *r)
{
    int64_t id, cum = INT64_MIN;
    idx_segment_t prev;
    sqlite3_stmt *s = stmt_tp(d, S_SEG_FLOOR, op->topic, op->partition);
    sqlite3_bind_int64(s, 3, r->seg.base_offset - 1);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        read_seg(s, &prev, &id, &cum);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return map_rc(rc);
    return insert_rows(d, r, cum);
}

static int do_replace_locked(idx__db_t *d, idx__op_t *op)
{
    int64_t *old_cum = calloc(op->n_repl ? op->n_repl : 1, sizeof(*old_cum));
    if (!old_cum)
        return ST_E_NOMEM;
    int rc = 0;
    for (size_t i = 0; i < op->n_repl && rc == 0; i++) {
        idx__repl_t *r = &op->repl[i];
        sqlite3_stmt *s = d->st[S_SEG_BY_KEY];
        sqlite3_reset(s);
        sqlite3_bind_text(s, 1, r->old_key, -1, SQLITE_STATIC);
        idx_segment_t g;
        int64_t id = 0;
        bool is_match = false;
        if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            read_seg(s, &g, &id, &old_cum[i]);
            is_match = g.topic && !strcmp(g.topic, op->topic) && g.partition == op->partition &&
                       g.base_offset == r->seg.base_offset && g.last_offset == r->seg.last_offset;
        }
        sqlite3_reset(s);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            rc = map_rc(rc);
        else if (!is_match)
            rc = ST_E_NOTFOUND;
        else if ((rc = delete_seg(d, id)) == 0)
            rc = insert_repl(d, op, r);
    }
    if (rc == 0 && op->n_repl > 0) {
        /* From the row before the first replaced one, which did not change. */
        cum_from_t at = {op->repl[0].seg.base_offset - 1, INT64_MIN, INT64_MIN};
        idx_segment_t g;
        int64_t id;
        sqlite3_stmt *s = stmt_tp(d, S_SEG_FLOOR, op->topic, op->partition);
        sqlite3_bind_int64(s, 3, at.after);
        if ((rc = sqlite3_step(s)) == SQLITE_ROW)
            read_seg(s, &g, &id, &at.cum);
        sqlite3_reset(s);
        at.stored_prev = at.cum;
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? fix_cum(d, op, at, old_cum) : map_rc(rc);
    }
    free(old_cum);
    if (rc == 0) {
        sqlite3_stmt *s = stmt_tp(d, S_CLEAN_SET, op->topic, op->partition);
        sqlite3_bind_int64(s, 3, op->arg_i64);
        rc = step_done(s);
    }
    return rc;
}

static int do_clean_end(idx__db_t *d, idx__op_t *op)
{
    sqlite3_stmt *s = stmt_tp(d, S_CLEAN_GET, op->topic, op->partition);
    int rc = sqlite3_step(s);
    op->out_i64 = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : map_rc(rc);
}

void idx__db_run(idx__db_t *d, idx__op_t *op)
{
    int rc;
    switch (op->kind) {
    case IDX__OP_ADD:
        rc = in_txn(d, op, do_add_locked);
        break;
    case IDX__OP_LOOKUP_OFFSET:
        rc = do_lookup_offset(d, op);
        break;
    case IDX__OP_LOOKUP_TIME:
        rc = do_lookup_time(d, op);
        break;
    case IDX__OP_LIST_SEGMENTS:
        rc = do_list_segments(d, op);
        break;
    case IDX__OP_HIGH_OFFSET:
        rc = do_edge_offset(d, op, true);
        break;
    case IDX__OP_LOW_OFFSET:
        rc = do_edge_offset(d, op, false);
        break;
    case IDX__OP_DELETE_BELOW:
        rc = in_txn(d, op, do_delete_below_locked);
        break;
    case IDX__OP_DROP:
        rc = in_txn(d, op, do_drop_locked);
        break;
    case IDX__OP_LIST_KEYS:
        rc = do_list_keys(d, op);
        break;
    case IDX__OP_LIST_ABORTED:
        rc = do_list_aborted(d, op);
        break;
    case IDX__OP_REPLACE:
        rc = in_txn(d, op, do_replace_locked);
        break;
    case IDX__OP_CLEAN_END:
        rc = do_clean_end(d, op);
        break;
    default:
        rc = ST_E_INVAL;
        break;
    }
    op->status = rc;
    if (rc != 0 && op->kind != IDX__OP_LIST_SEGMENTS) {
        /* A failed delete rolled back: report no keys. */
        for (size_t i = 0; i < op->n_keys; i++)
            free(op->keys[i]);
        op->n_keys = 0;
    }
}
