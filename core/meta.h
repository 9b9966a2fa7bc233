/* meta.h - cluster metadata: topics (name, id, partition count, config
 * overrides), persisted in SQLite (data/meta.db), published to every shard
 * as immutable reference-counted snapshots.
 * Data path: Metadata/Produce/Fetch handlers on any shard read the current
 * snapshot (meta_snap_get, a mutex-guarded pointer copy + refcount, no I/O).
 * Mutations (CreateTopics, DeleteTopics, auto-create, ...) run their SQLite
 * transaction on the libuv thread pool, then publish a new snapshot and call
 * back on the caller's loop: no loop ever waits on SQLite.
 * Invariant: a snapshot never changes after it is published. */
#ifndef META_H
#define META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/acl.h"
#include "core/st_err.h"

#define META_TOPIC_MAX 249 /* Kafka's limit on topic name length */

typedef struct {
    char *key;   /* owned */
    char *value; /* owned */
} meta_kv_t;

typedef struct {
    char *name; /* owned */
    uint8_t id[16];
    int32_t n_partitions;
    int64_t created_ms;
    meta_kv_t *configs; /* owned: topic-level overrides, sorted by key */
    int n_configs;
} meta_topic_t;

typedef struct meta_snap {
    _Atomic int refs;
    int64_t version;
    meta_topic_t *topics; /* owned: sorted by name */
    int n_topics;
} meta_snap_t;

typedef struct meta meta_t;

/** Open (creating) DIR/meta.db and load it. @blocking yes: call at start-up. */
ST_MUST_CHECK int meta_open(const char *dir, meta_t **out, char *errbuf, size_t errbuf_len);
void meta_close(meta_t *m);

/** The current snapshot, referenced; release with meta_snap_put. @thread any */
meta_snap_t *meta_snap_get(meta_t *m);
void meta_snap_put(meta_snap_t *s);
/** Topic by name (len bytes, not NUL-terminated), or NULL. */
const meta_topic_t *meta_snap_find(const meta_snap_t *s, const char *name, size_t len);
/** Topic by id, or NULL. */
const meta_topic_t *meta_snap_find_id(const meta_snap_t *s, const uint8_t id[16]);
/** A topic config override, or NULL. */
const char *meta_topic_config(const meta_topic_t *t, const char *key);

/** Kafka's topic name rule: 1..249 of [a-zA-Z0-9._-], not "." or "..".
 * @return NULL when valid, else a static reason. */
const char *meta_topic_name_invalid(const char *name, size_t len);

typedef void (*meta_done_cb)(void *arg, int status, const char *msg);

typedef struct {
    const char *name;
    int32_t n_partitions;
    const meta_kv_t *configs; /* borrowed for the call: copied */
    int n_configs;
} meta_topic_spec_t;

/** Create a topic: SQLite insert on the thread pool, then a new snapshot, then
 * cb(arg, 0 | ST_E_EXISTS | error, message) on loop. Specs are copied.
 * @thread loop's thread */
void meta_create_topic(
    meta_t *m, uv_loop_t *loop, const meta_topic_spec_t *spec, meta_done_cb cb, void *arg);
/** Delete a topic (ST_E_NOTFOUND if absent). */
void meta_delete_topic(meta_t *m, uv_loop_t *loop, const char *name, meta_done_cb cb, void *arg);
/** Raise a topic's partition count (ST_E_INVAL if not larger). */
void meta_set_partitions(
    meta_t *m, uv_loop_t *loop, const char *name, int32_t n_partitions, meta_done_cb cb, void *arg);
/** Replace (replace_all) or merge a topic's config overrides; a NULL value
 * deletes the key. */
void meta_set_configs(meta_t *m,
                      uv_loop_t *loop,
                      const char *name,
                      const meta_kv_t *kvs,
                      int n,
                      bool replace_all,
                      meta_done_cb cb,
                      void *arg);

/* ---- ACLs: stored here, published as immutable sets (core/acl.h) ---- */
/** The current ACL set, referenced (never NULL once open); release with
 * acl_set_put. @thread any  @blocking no */
acl_set_t *meta_acls_get(meta_t *m);
/** Add and remove ACL bindings in one SQLite transaction on the thread pool
 * (adding a present binding or removing an absent one is no error), publish
 * the new set, then cb(arg, 0 | error, message) on loop. Bindings are copied.
 * @thread loop's thread */
void meta_acls_change(meta_t *m,
                      uv_loop_t *loop,
                      const acl_entry_t *add,
                      int n_add,
                      const acl_entry_t *del,
                      int n_del,
                      meta_done_cb cb,
                      void *arg);

/** Next producer id (persisted in blocks so ids never repeat across restarts).
 * @blocking rarely (one SQLite write per 1000 ids) — call from the pool or at start. */
int64_t meta_next_producer_id(meta_t *m);

/* ---- Transaction coordinator state (meta_txn.c) ----
 * One row per transactional id; the state bytes are the coordinator's own
 * encoding (kafka/kh_txn.c). */

/** Called by meta_txn_load for each row; state is borrowed for the call.
 * @return 0 to go on, or a negative st_err that stops the load. */
typedef int (*meta_txn_row_fn)(void *arg, const char *id, const void *state, size_t len);
/** Read every stored transaction (creating the table when missing).
 * @return 0, ST_E_IO (errbuf says why) or fn's error. @blocking yes: start-up or pool */
ST_MUST_CHECK int
meta_txn_load(meta_t *m, meta_txn_row_fn fn, void *arg, char *errbuf, size_t errbuf_len);
/** Store (state != NULL) or delete (state NULL) the row of id, durably.
 * @return 0 or ST_E_IO. @blocking yes: call from the thread pool */
ST_MUST_CHECK int meta_txn_put(meta_t *m, const char *id, const void *state, size_t len);

/* ---- SCRAM users (meta_users.c) ----
 * Credentials of SASL/SCRAM users, one per (user, mechanism), as RFC 5802
 * stores them: salt, iterations, StoredKey, ServerKey; never a password.
 * Published like topics, as an immutable snapshot shards read without I/O
 * (SaslAuthenticate); changed on the thread pool (AlterUserScramCredentials,
 * the admin API's /v1/security/users). */

#define META_SCRAM_SALT_MAX 64
#define META_SCRAM_KEY_MAX  64

typedef struct {
    char *name;       /* owned (in a snapshot); borrowed in a meta_scram_change_t */
    int8_t mechanism; /* ST_SCRAM_SHA_256 / ST_SCRAM_SHA_512 (core/st_scram.h) */
    int32_t iterations;
    uint8_t salt[META_SCRAM_SALT_MAX];
    int salt_len;
    uint8_t stored_key[META_SCRAM_KEY_MAX]; /* the mechanism's hash length is used */
    uint8_t server_key[META_SCRAM_KEY_MAX];
} meta_scram_cred_t;

typedef struct meta_users {
    _Atomic int refs;
    int64_t version;
    meta_scram_cred_t *creds; /* owned: sorted by (name, mechanism) */
    int n_creds;
} meta_users_t;

/** The current users snapshot, referenced; release with meta_users_put. @thread any */
meta_users_t *meta_users_get(meta_t *m);
void meta_users_put(meta_users_t *u);
/** The credential of (name, mechanism), or NULL. name is len bytes. */
const meta_scram_cred_t *
meta_users_find(const meta_users_t *u, const char *name, size_t len, int mechanism);

/* One change of meta_users_alter. */
typedef struct {
    bool is_delete;
    meta_scram_cred_t cred; /* deletion: only name and mechanism */
    int status; /* out: 0, ST_E_NOTFOUND (deleting an absent credential), other errors */
} meta_scram_change_t;

/** Apply changes in one SQLite transaction on the thread pool, publish the
 * next users snapshot, then cb(arg, status, msg) on loop. A change whose
 * status is already non-zero is skipped (the caller refused it).
 * @param changes  Borrowed until cb runs; each status is set before cb.
 * @thread loop's thread */
void meta_users_alter(
    meta_t *m, uv_loop_t *loop, meta_scram_change_t *changes, int n, meta_done_cb cb, void *arg);
/** Check a password against user's SCRAM credential (SHA-512 first, else
 * SHA-256): derive StoredKey with its salt and iterations and compare in
 * constant time. An unknown user costs the same derivation (with a fake
 * credential), so timing does not tell whether it exists. user is user_len
 * bytes. @thread any @blocking CPU (PBKDF2): call off the shard loops */
bool meta_users_check_password(
    meta_t *m, const char *user, size_t user_len, const char *password, size_t password_len);
/** The credential shown for a user that does not exist: a salt derived from
 * a process secret and user (the same for every attempt, like a real one's),
 * the minimum iterations, and random keys nobody can match. */
void meta_scram_cred_fake(const char *user, size_t user_len, int mechanism, meta_scram_cred_t *out);
/** meta_users_alter, blocking (start-up: the bootstrap user).
 * @return 0 or the transaction's error. @blocking yes */
int meta_users_alter_now(meta_t *m, meta_scram_change_t *changes, int n);
/** A new credential for password: random salt (24 bytes), iterations (at
 * least 4096), StoredKey and ServerKey. out->name is not set.
 * @return 0 or ST_E_INVAL. @blocking CPU (PBKDF2): call off the loops */
ST_MUST_CHECK int meta_scram_cred_make(int mechanism,
                                       const char *password,
                                       size_t password_len,
                                       int32_t iterations,
                                       meta_scram_cred_t *out);

#endif
