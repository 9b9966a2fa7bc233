/* goffs.h - durable committed offsets of consumer groups (SQLite, data/offsets.db).
 * Data path: OffsetCommit is validated by the group's owning shard (kafka/grp) -> the
 * shard hands a batch of rows to goffs_apply() -> one SQLite transaction runs on the
 * libuv thread pool (WAL, synchronous=FULL: durable at COMMIT) -> the callback runs on the
 * shard's loop, which then updates its in-memory offsets and acknowledges the commit.
 * At start-up goffs_open() loads every row once; each shard takes the rows of the groups
 * it owns (goffs_loaded) before it serves requests.
 * Invariants: 1. a batch is applied entirely or not at all (one transaction);
 *             2. batches are applied in the order each caller submits them as long as the
 *                caller keeps at most one batch in flight (kafka/kh_group.c does: one writer
 *                per shard), so a later commit of a partition never loses to an earlier one.
 * The same database keeps each KIP-848 consumer group's membership (epochs, members,
 * subscriptions, assignments: an opaque blob of kafka/grp_cons.c, table consumer_groups), so
 * members keep their epochs and partitions across a restart as Kafka's __consumer_offsets
 * keeps them.
 * Why not meta.db: a second connection writing meta.db would make topic mutations fail
 * with SQLITE_BUSY (meta.c has no busy handler), and commits would queue behind topic DDL. */
#ifndef GOFFS_H
#define GOFFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/st_err.h"

typedef struct goffs goffs_t;

typedef enum {
    GOFFS_PUT,       /* upsert (group, topic, partition) */
    GOFFS_DEL,       /* delete matching rows: NULL group/topic or partition -1 match anything */
    GOFFS_GROUP_PUT, /* upsert a consumer group's membership blob (group, state) */
    GOFFS_GROUP_DEL  /* forget a consumer group's membership (group) */
} goffs_kind_t;

/* One committed offset, or one deletion pattern. */
typedef struct goffs_row {
    goffs_kind_t kind;
    /* owned by whoever built the row (borrowed by goffs for the call / until the callback) */
    char *group;
    /* as group; NULL in a GOFFS_DEL matches any topic */
    char *topic;
    /* partition index; -1 in a GOFFS_DEL matches any partition */
    int32_t partition;
    /* the committed offset (GOFFS_PUT) */
    int64_t offset;
    /* the committed leader epoch, -1 if unknown */
    int32_t leader_epoch;
    /* client metadata string, NULL for null */
    char *metadata;
    /* wall-clock time of the commit, ms since the epoch (offsets.retention.minutes) */
    int64_t commit_ms;
    /* GOFFS_GROUP_PUT: the membership blob (owned as group) */
    uint8_t *state;
    int32_t state_len;
} goffs_row_t;

/** Open (creating) DIR/offsets.db and load every committed offset into memory.
 * @return 0 or ST_E_IO / ST_E_NOMEM (errbuf says why). @blocking yes: call at start-up. */
ST_MUST_CHECK int goffs_open(const char *dir, goffs_t **out, char *errbuf, size_t errbuf_len);
/** Close the database; every goffs_apply() callback must have run. goffs_close(NULL) is a no-op. */
void goffs_close(goffs_t *g);

/** The rows loaded by goffs_open() (GOFFS_PUT rows), borrowed and immutable until goffs_close().
 * @thread any @blocking no */
const goffs_row_t *goffs_loaded(const goffs_t *g, int *n_rows);

/** The consumer group memberships loaded by goffs_open() (GOFFS_GROUP_PUT rows: group, state),
 * borrowed and immutable until goffs_close(). @thread any @blocking no */
const goffs_row_t *goffs_loaded_groups(const goffs_t *g, int *n_rows);

typedef void (*goffs_done_cb)(void *arg, int status);

/** Apply rows[0..n) in one transaction on the thread pool, then cb(arg, 0 | ST_E_IO) on loop.
 * @param rows  Borrowed until cb runs.
 * @thread loop's thread @blocking no */
void goffs_apply(
    goffs_t *g, uv_loop_t *loop, const goffs_row_t *rows, int n, goffs_done_cb cb, void *arg);

#endif
