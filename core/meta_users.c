/* meta_users.c - SCRAM users in the metadata store, published as immutable
 * snapshots (the same scheme as topics in meta.c).
 * Data path: SaslAuthenticate (kafka/kh_sasl.c) and the admin API's HTTP
 * Basic look credentials up in the current snapshot (meta_users_get: a
 * mutex-guarded pointer copy + refcount, no I/O). AlterUserScramCredentials
 * and /v1/security/users change them: SQLite transaction on the thread pool,
 * then a new snapshot, then the callback on the caller's loop.
 * Invariants: 1. the table holds salt, iterations, StoredKey and ServerKey
 *                only: the password and the salted password are never stored;
 *             2. a snapshot never changes after it is published. */
#include "core/meta_int.h"
#include "core/st_log.h"
#include "core/st_scram.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Snapshots ---- */

void meta_users_put(meta_users_t *u)
{
    if (!u || atomic_fetch_sub(&u->refs, 1) != 1)
        return;
    for (int i = 0; i < u->n_creds; i++)
        free(u->creds[i].name);
    free(u->creds);
    free(u);
}

meta_users_t *meta_users_get(meta_t *m)
{
    pthread_mutex_lock(&m->snap_mu);
    meta_users_t *u = m->users;
    atomic_fetch_add(&u->refs, 1);
    pthread_mutex_unlock(&m->snap_mu);
    return u;
}

static void users_publish(meta_t *m, meta_users_t *u)
{
    pthread_mutex_lock(&m->snap_mu);
    meta_users_t *old = m->users;
    u->version = old ? old->version + 1 : 1;
    m->users = u;
    pthread_mutex_unlock(&m->snap_mu);
    meta_users_put(old);
}

static int cmp_key(const char *an, int am, const char *bn, size_t blen, int bm)
{
    int c = strncmp(an, bn, blen);
    if (c == 0 && an[blen] != 0)
        c = 1; /* a is longer */
    return c != 0 ? c : am - bm;
}

static int cmp_cred(const void *a, const void *b)
{
    const meta_scram_cred_t *x = a, *y = b;
    return cmp_key(x->name, x->mechanism, y->name, strlen(y->name), y->mechanism);
}

const meta_scram_cred_t *
meta_users_find(const meta_users_t *u, const char *name, size_t len, int mechanism)
{
    if (memchr(name, 0, len))
        return NULL;
    int lo = 0, hi = u->n_creds - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = cmp_key(u->creds[mid].name, u->creds[mid].mechanism, name, len, mechanism);
        if (c == 0)
            return &u->creds[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

static meta_users_t *users_new(void)
{
    meta_users_t *u = calloc(1, sizeof(*u));
    if (u)
        atomic_init(&u->refs, 1);
    return u;
}

static int users_add(meta_users_t *u, const meta_scram_cred_t *c)
{
    meta_scram_cred_t *n = realloc(u->creds, (size_t)(u->n_creds + 1) * sizeof(*n));
    if (!n)
        return ST_E_NOMEM;
    u->creds = n;
    n[u->n_creds] = *c;
    n[u->n_creds].name = strdup(c->name);
    if (!n[u->n_creds].name)
        return ST_E_NOMEM;
    u->n_creds++;
    return 0;
}

/* ---- Load (start-up) ---- */

static int load(meta_t *m, meta_users_t *u)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(m->db,
                           "SELECT name, mechanism, iterations, salt, stored_key, server_key "
                           "FROM scram_credentials",
                           -1, &st, NULL) != SQLITE_OK)
        return ST_E_IO;
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        meta_scram_cred_t c = {0};
        c.name = (char *)sqlite3_column_text(st, 0);
        c.mechanism = (int8_t)sqlite3_column_int(st, 1);
        c.iterations = sqlite3_column_int(st, 2);
        size_t hl = st_scram_hash_len(c.mechanism);
        int sl = sqlite3_column_bytes(st, 3);
        if (!c.name || hl == 0 || sl <= 0 || sl > META_SCRAM_SALT_MAX ||
            sqlite3_column_bytes(st, 4) != (int)hl || sqlite3_column_bytes(st, 5) != (int)hl) {
            ST_WARN("meta", "skipping a malformed SCRAM credential row");
            continue;
        }
        c.salt_len = sl;
        memcpy(c.salt, sqlite3_column_blob(st, 3), (size_t)sl);
        memcpy(c.stored_key, sqlite3_column_blob(st, 4), hl);
        memcpy(c.server_key, sqlite3_column_blob(st, 5), hl);
        rc = users_add(u, &c);
    }
    sqlite3_finalize(st);
    if (rc == 0 && u->n_creds > 1)
        qsort(u->creds, (size_t)u->n_creds, sizeof(*u->creds), cmp_cred);
    return rc;
}

int meta__users_open(meta_t *m, char *errbuf, size_t errbuf_len)
{
    int rc = meta__exec(m,
                        "CREATE TABLE IF NOT EXISTS scram_credentials(name TEXT NOT NULL,"
                        " mechanism INTEGER NOT NULL, iterations INTEGER NOT NULL,"
                        " salt BLOB NOT NULL, stored_key BLOB NOT NULL, server_key BLOB NOT NULL,"
                        " PRIMARY KEY(name, mechanism));",
                        errbuf, errbuf_len);
    if (rc != 0)
        return rc;
    meta_users_t *u = users_new();
    if (!u)
        return ST_E_NOMEM;
    rc = load(m, u);
    if (rc != 0) {
        snprintf(errbuf, errbuf_len, "metadata store: cannot load SCRAM users: %s",
                 sqlite3_errmsg(m->db));
        meta_users_put(u);
        return rc;
    }
    users_publish(m, u);
    return 0;
}

void meta__users_close(meta_t *m)
{
    meta_users_put(m->users);
    m->users = NULL;
}

/* ---- Alter (thread pool) ---- */

typedef struct {
    uv_work_t req;
    meta_t *m;
    meta_scram_change_t *changes; /* borrowed until cb */
    int n;
    meta_done_cb cb;
    void *arg;
    int status;
    char msg[256];
} uop_t;

static int write_change(meta_t *m, const meta_scram_change_t *ch)
{
    const meta_scram_cred_t *c = &ch->cred;
    sqlite3_stmt *st;
    const char *sql = ch->is_delete
                          ? "DELETE FROM scram_credentials WHERE name=?1 AND mechanism=?2"
                          : "INSERT OR REPLACE INTO scram_credentials(name, mechanism, iterations,"
                            " salt, stored_key, server_key) VALUES(?1, ?2, ?3, ?4, ?5, ?6)";
    if (sqlite3_prepare_v2(m->db, sql, -1, &st, NULL) != SQLITE_OK)
        return ST_E_IO;
    sqlite3_bind_text(st, 1, c->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, c->mechanism);
    if (!ch->is_delete) {
        int hl = (int)st_scram_hash_len(c->mechanism);
        sqlite3_bind_int(st, 3, c->iterations);
        sqlite3_bind_blob(st, 4, c->salt, c->salt_len, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 5, c->stored_key, hl, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 6, c->server_key, hl, SQLITE_TRANSIENT);
    }
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : ST_E_IO;
    sqlite3_finalize(st);
    return rc;
}

/* The next snapshot: cur with the accepted changes applied. */
static meta_users_t *apply(const meta_users_t *cur, uop_t *op)
{
    meta_users_t *n = users_new();
    if (!n)
        return NULL;
    for (int i = 0; i < cur->n_creds; i++) {
        const meta_scram_cred_t *c = &cur->creds[i];
        bool is_changed = false;
        for (int k = 0; k < op->n && !is_changed; k++)
            is_changed = op->changes[k].status == 0 &&
                         op->changes[k].cred.mechanism == c->mechanism &&
                         !strcmp(op->changes[k].cred.name, c->name);
        if (!is_changed && users_add(n, c) != 0)
            goto fail;
    }
    for (int k = 0; k < op->n; k++)
        if (op->changes[k].status == 0 && !op->changes[k].is_delete &&
            users_add(n, &op->changes[k].cred) != 0)
            goto fail;
    if (n->n_creds > 1)
        qsort(n->creds, (size_t)n->n_creds, sizeof(*n->creds), cmp_cred);
    return n;
fail:
    meta_users_put(n);
    return NULL;
}

static void uop_work(uv_work_t *req)
{
    uop_t *op = req->data;
    meta_t *m = op->m;
    pthread_mutex_lock(&m->db_mu);
    meta_users_t *cur = meta_users_get(m);
    for (int k = 0; k < op->n; k++) {
        meta_scram_change_t *ch = &op->changes[k];
        if (ch->status == 0 && ch->is_delete &&
            !meta_users_find(cur, ch->cred.name, strlen(ch->cred.name), ch->cred.mechanism))
            ch->status = ST_E_NOTFOUND;
    }
    int rc = meta__exec(m, "BEGIN IMMEDIATE", op->msg, sizeof(op->msg));
    for (int k = 0; rc == 0 && k < op->n; k++)
        if (op->changes[k].status == 0)
            rc = write_change(m, &op->changes[k]);
    meta_users_t *n = NULL;
    if (rc == 0 && !(n = apply(cur, op)))
        rc = ST_E_NOMEM;
    if (rc == 0)
        rc = meta__exec(m, "COMMIT", op->msg, sizeof(op->msg));
    if (rc != 0) {
        if (!op->msg[0])
            snprintf(op->msg, sizeof(op->msg), "metadata store: %s", sqlite3_errmsg(m->db));
        char ignore[64];
        (void)meta__exec(m, "ROLLBACK", ignore, sizeof(ignore));
        for (int k = 0; k < op->n; k++)
            if (op->changes[k].status == 0)
                op->changes[k].status = rc;
        meta_users_put(n);
    } else {
        users_publish(m, n);
    }
    meta_users_put(cur);
    pthread_mutex_unlock(&m->db_mu);
    op->status = rc;
}

static void uop_after(uv_work_t *req, int status)
{
    uop_t *op = req->data;
    if (status != 0 && op->status == 0) {
        op->status = status;
        for (int k = 0; k < op->n; k++)
            if (op->changes[k].status == 0)
                op->changes[k].status = status;
    }
    op->cb(op->arg, op->status, op->msg[0] ? op->msg : NULL);
    free(op);
}

void meta_users_alter(
    meta_t *m, uv_loop_t *loop, meta_scram_change_t *changes, int n, meta_done_cb cb, void *arg)
{
    uop_t *op = calloc(1, sizeof(*op));
    if (!op) {
        cb(arg, ST_E_NOMEM, "out of memory");
        return;
    }
    op->m = m;
    op->changes = changes;
    op->n = n;
    op->cb = cb;
    op->arg = arg;
    op->req.data = op;
    int rc = uv_queue_work(loop, &op->req, uop_work, uop_after);
    if (rc != 0) {
        free(op);
        cb(arg, rc, "cannot queue metadata work");
    }
}

int meta_users_alter_now(meta_t *m, meta_scram_change_t *changes, int n)
{
    uop_t op = {.m = m, .changes = changes, .n = n};
    op.req.data = &op;
    uop_work(&op.req);
    return op.status;
}

int meta_scram_cred_make(int mechanism,
                         const char *password,
                         size_t password_len,
                         int32_t iterations,
                         meta_scram_cred_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!st_scram_hash_len(mechanism) || iterations < ST_SCRAM_MIN_ITERATIONS ||
        iterations > ST_SCRAM_MAX_ITERATIONS)
        return ST_E_INVAL;
    out->mechanism = (int8_t)mechanism;
    out->iterations = iterations;
    out->salt_len = 24;
    if (RAND_bytes(out->salt, out->salt_len) != 1)
        return ST_E_INVAL;
    return st_scram_derive(mechanism, password, password_len, out->salt, (size_t)out->salt_len,
                           iterations, out->stored_key, out->server_key);
}

/* ---- Password checks (PLAIN, HTTP Basic) ---- */

#define FAKE_SALT_BYTES 24 /* the salt length meta_scram_cred_make gives real users */

static uint8_t g_secret[32];
static pthread_once_t g_secret_once = PTHREAD_ONCE_INIT;

static void secret_init(void)
{
    if (RAND_bytes(g_secret, sizeof(g_secret)) != 1)
        ST_WARN("meta", "RAND_bytes failed: unknown SCRAM users get a predictable salt");
}

void meta_scram_cred_fake(const char *user, size_t user_len, int mechanism, meta_scram_cred_t *out)
{
    pthread_once(&g_secret_once, secret_init);
    uint8_t h[ST_SCRAM_HASH_MAX];
    memset(out, 0, sizeof(*out));
    out->mechanism = (int8_t)mechanism;
    out->iterations = ST_SCRAM_MIN_ITERATIONS;
    if (st_scram_hmac(ST_SCRAM_SHA_256, g_secret, sizeof(g_secret), user, user_len, h) != 0)
        memset(h, 0, sizeof(h));
    memcpy(out->salt, h, FAKE_SALT_BYTES);
    out->salt_len = FAKE_SALT_BYTES;
    if (RAND_bytes(out->stored_key, sizeof(out->stored_key)) != 1)
        memset(out->stored_key, 0xa5, sizeof(out->stored_key));
    memcpy(out->server_key, out->stored_key, sizeof(out->server_key));
}

bool meta_users_check_password(
    meta_t *m, const char *user, size_t user_len, const char *password, size_t password_len)
{
    meta_users_t *u = meta_users_get(m);
    const meta_scram_cred_t *c = meta_users_find(u, user, user_len, ST_SCRAM_SHA_512);
    if (!c)
        c = meta_users_find(u, user, user_len, ST_SCRAM_SHA_256);
    meta_scram_cred_t fake;
    bool is_known = c != NULL;
    if (!c) {
        meta_scram_cred_fake(user, user_len, ST_SCRAM_SHA_512, &fake);
        c = &fake;
    }
    uint8_t stored[ST_SCRAM_HASH_MAX], server[ST_SCRAM_HASH_MAX];
    bool ok = st_scram_derive(c->mechanism, password, password_len, c->salt, (size_t)c->salt_len,
                              c->iterations, stored, server) == 0 &&
              st_scram_ct_eq(stored, c->stored_key, st_scram_hash_len(c->mechanism)) && is_known;
    OPENSSL_cleanse(stored, sizeof(stored));
    OPENSSL_cleanse(server, sizeof(server));
    meta_users_put(u);
    return ok;
}
