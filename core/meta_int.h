/* meta_int.h - internals shared by the meta*.c files (topics in meta.c,
 * SCRAM users in meta_users.c): the store's struct and its SQLite helpers. */
#ifndef META_INT_H
#define META_INT_H

#include "core/acl.h"
#include "core/meta.h"

#include <pthread.h>
#include <sqlite3.h>

struct meta {
    sqlite3 *db;             /* owned; used with db_mu held */
    pthread_mutex_t db_mu;   /* serialises mutations */
    pthread_mutex_t snap_mu; /* guards the snapshot pointers below */
    meta_snap_t *snap;       /* owned ref: the current topic snapshot */
    meta_users_t *users;     /* owned ref: the current SCRAM users snapshot */
    int64_t pid_next, pid_block_end;
    acl_set_t *acls; /* owned ref, swapped under snap_mu: the current ACLs */
};

/** Run sql (no result rows). @return 0 or ST_E_IO (errbuf says why).
 * @thread start-up or pool, db_mu held */
int meta__exec(meta_t *m, const char *sql, char *errbuf, size_t errbuf_len);
/** Create the users table if needed and publish the first users snapshot.
 * @blocking yes (meta_open) */
int meta__users_open(meta_t *m, char *errbuf, size_t errbuf_len);
/** Drop the users snapshot reference (meta_close). */
void meta__users_close(meta_t *m);

#endif
