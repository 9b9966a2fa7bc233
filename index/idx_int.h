/* idx_int.h - internals shared by the index's files (idx.c: thread, queue,
 * clients; idx_db.c: schema, migrations, queries). Not for other modules. */
#ifndef IDX_INT_H
#define IDX_INT_H

#include <sqlite3.h>

#include "index/idx.h"

typedef enum {
    IDX__OP_ADD,
    IDX__OP_LOOKUP_OFFSET,
    IDX__OP_LOOKUP_TIME,
    IDX__OP_LIST_SEGMENTS,
    IDX__OP_HIGH_OFFSET,
    IDX__OP_LOW_OFFSET,
    IDX__OP_DELETE_BELOW,
    IDX__OP_DROP,
    IDX__OP_LIST_KEYS,
    IDX__OP_LIST_ABORTED,
    IDX__OP_REPLACE,
    IDX__OP_CLEAN_END,
} idx__op_kind_t;

/* One replacement of IDX__OP_REPLACE, its inputs copied (idx_db.c also
 * views an add's inputs through it: the rows of one object). */
typedef struct {
    char *old_key;       /* owned */
    char *key;           /* owned: seg.object_key points here */
    idx_segment_t seg;   /* seg.topic points to the op's topic; seg.aborted unused */
    idx_chunk_t *chunks; /* owned */
    size_t n_chunks;
    idx_aborted_t *aborted; /* owned */
    size_t n_aborted;
} idx__repl_t;

/* One submitted operation: inputs copied at submit time, outputs filled on
 * the index thread, delivered and freed on the client's loop. */
typedef struct idx__op {
    struct idx__op *next;
    idx__op_kind_t kind;
    idx_client_t *client; /* borrowed: the client outlives its pending ops */
    int status;

    /* Inputs. */
    char *topic; /* owned */
    int32_t partition;
    int64_t arg_i64; /* offset, timestamp or from_offset */
    size_t limit;
    char *after;         /* owned, may be NULL (list keys) */
    idx_segment_t seg;   /* add: strings point into topic / key below */
    char *key;           /* owned (add) */
    idx_chunk_t *chunks; /* owned (add) */
    size_t n_chunks;
    idx_aborted_t *aborted; /* owned (add: input; list aborted: output) */
    size_t n_aborted, aborted_cap;
    idx__repl_t *repl; /* owned (replace): n_repl entries */
    size_t n_repl;

    /* Outputs. */
    idx_loc_t loc;
    char *loc_topic, *loc_key; /* owned strings behind loc.seg */
    idx_segment_t *segs;       /* owned: n_segs rows; strings in seg_strs */
    size_t n_segs;
    char **seg_strs; /* owned: 2 per segment (topic, key) */
    int64_t out_i64;
    char **keys; /* owned */
    size_t n_keys, keys_cap;
    bool has_more;

    union {
        idx_done_cb done;
        idx_loc_cb loc;
        idx_offset_cb offset;
        idx_segs_cb segs;
        idx_keys_cb keys;
        idx_aborted_cb aborted;
    } cb;
    void *arg;
} idx__op_t;

/* The database, owned by the index thread. */
typedef struct idx__db idx__db_t;

/** Open path, set WAL/FULL and migrate. @thread index thread */
int idx__db_open(const char *path, idx__db_t **out, char *errbuf, size_t errbuf_len);
void idx__db_close(idx__db_t *db);
/** Execute op on the index thread; sets op->status and outputs. */
void idx__db_run(idx__db_t *db, idx__op_t *op);

/* The read queries, by name, for tests that check their plans (EXPLAIN QUERY
 * PLAN must show an index search, never a table scan). NULL-terminated. */
typedef struct {
    const char *name;
    const char *sql;
} idx__query_t;
extern const idx__query_t idx__queries[];

#endif
