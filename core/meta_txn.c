/* meta_txn.c - durable state of the transaction coordinators in meta.db.
 * Data path: a coordinator (kafka/kh_txn.c) changes a transaction only after
 * meta_txn_put() committed its next state (one row per transactional id, the
 * state encoded by the coordinator), called on the libuv thread pool, never on
 * a shard loop; at start each shard reads the rows of the ids it owns with
 * meta_txn_load(). WAL with synchronous=FULL (meta_open): a row is durable
 * when meta_txn_put returns 0.
 * Invariant: a row holds the last state acknowledged to a client or acted on
 * (markers are written only after their PrepareCommit/PrepareAbort row). */
#include "core/meta_int.h"
#include "core/st_log.h"

#include <stdio.h>
#include <string.h>

static const char k_schema[] =
    "CREATE TABLE IF NOT EXISTS txns(id TEXT PRIMARY KEY, state BLOB NOT NULL);";

int meta_txn_load(meta_t *m, meta_txn_row_fn fn, void *arg, char *errbuf, size_t errbuf_len)
{
    pthread_mutex_lock(&m->db_mu);
    int rc = meta__exec(m, k_schema, errbuf, errbuf_len);
    sqlite3_stmt *st = NULL;
    if (rc == 0 &&
        sqlite3_prepare_v2(m->db, "SELECT id, state FROM txns", -1, &st, NULL) != SQLITE_OK) {
        snprintf(errbuf, errbuf_len, "metadata store: %s", sqlite3_errmsg(m->db));
        rc = ST_E_IO;
    }
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        const void *blob = sqlite3_column_blob(st, 1);
        int len = sqlite3_column_bytes(st, 1);
        if (id && len >= 0)
            rc = fn(arg, id, blob, (size_t)len);
    }
    if (rc == 0 && step != SQLITE_DONE) {
        snprintf(errbuf, errbuf_len, "metadata store: %s", sqlite3_errmsg(m->db));
        rc = ST_E_IO;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->db_mu);
    return rc;
}

int meta_txn_put(meta_t *m, const char *id, const void *state, size_t len)
{
    pthread_mutex_lock(&m->db_mu);
    char err[256];
    int rc = meta__exec(m, k_schema, err, sizeof(err));
    sqlite3_stmt *st = NULL;
    const char *sql = state ? "INSERT OR REPLACE INTO txns(id, state) VALUES(?1, ?2)"
                            : "DELETE FROM txns WHERE id = ?1";
    if (rc == 0 && sqlite3_prepare_v2(m->db, sql, -1, &st, NULL) != SQLITE_OK)
        rc = ST_E_IO;
    if (rc == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (state)
            sqlite3_bind_blob(st, 2, state, (int)len, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = ST_E_IO;
    }
    if (rc != 0)
        ST_ERROR("meta", "cannot store transaction id=%s: %s", id,
                 st ? sqlite3_errmsg(m->db) : err);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->db_mu);
    return rc;
}
