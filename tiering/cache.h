/* cache.h - the hydration chunk cache: compressed chunks (zstd frames) of
 * archived segments, kept as files on local disk under <log.dir>/cache/,
 * bounded in bytes, evicted least recently used first.
 *
 * Data path: tier_read() (tier_rd.c) asks hyd_cache_get() for the chunk that
 * holds an offset; a hit skips the ranged GET. A download (demand or
 * read-ahead) verifies each chunk against the index's CRC-32C, writes it with
 * hyd_cache_write() on the thread pool and publishes it with hyd_cache_add().
 *
 * Entry file "<seq, 16 hex>.hc" (little-endian):
 *   u32 magic 0x43485453 ("STHC")  u32 version (1)  u32 key_len  u32 data_len
 *   u32 data_crc32c  u32 hdr_crc32c (CRC-32C of the 20 bytes before it + key)
 *   key bytes  data bytes
 * Files are written as "<seq>.tmp" (written and read with O_DIRECT where the
 * filesystem takes it: no page-cache page per chunk byte) and renamed, never
 * fsynced (the cache is disposable: a file cut short or zero-filled by a crash
 * fails its size or checksum check and is removed, then the chunk is fetched
 * again); the name of an entry never changes, and a key written again gets a new sequence number,
 * so unlinking an evicted file can never remove a newer copy. Recency is the file's mtime (touched
 * on every hit), which is how the LRU order survives a restart.
 *
 * Invariants: 1. the in-memory table and the LRU list are touched only on the
 *                cache's loop; bytes_used is the sum of the entries' file sizes;
 *             2. after every hyd_cache_add(), bytes_used <= max_bytes (least
 *                recently used entries are evicted first);
 *             3. data is returned only after its checksums matched; a corrupt
 *                entry is removed from the table and its file unlinked;
 *             4. all file I/O (read, write, unlink, the rebuild scan) runs on
 *                a worker pool: the hydration pool once hyd_cache_set_port()
 *                gave its port, libuv's thread pool before (the scan) or
 *                without one.
 *
 * Entry states (in memory):   absent --add--> LIVE --evict/corrupt/replace--> absent
 * Files: <seq>.tmp --rename (hyd_cache_write)--> <seq>.hc --unlink (evict)--> gone
 */
#ifndef HYD_CACHE_H
#define HYD_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/st_err.h"
#include "core/st_pool.h"

#define HYD_CACHE_MAX_KEY 1100 /* object key (1024) + "@" + position */

typedef struct hyd_cache hyd_cache_t;

typedef struct {
    int64_t hits;       /* gets answered from disk */
    int64_t misses;     /* gets of absent keys (or files gone meanwhile) */
    int64_t corrupt;    /* entries that failed verification (removed) */
    int64_t evictions;  /* entries evicted to stay under max_bytes */
    int64_t entries;    /* entries now */
    int64_t bytes_used; /* file bytes of the entries now */
} hyd_cache_stats_t;

/** A file written by hyd_cache_write(), waiting for hyd_cache_add(). */
typedef struct {
    char *key;     /* owned */
    uint64_t seq;  /* file name */
    uint64_t size; /* file bytes, header included */
} hyd_cache_file_t;

typedef void (*hyd_cache_ready_cb)(void *arg, int status);

/** Open the cache in dir (created if missing) and rebuild the LRU from its
 * files on the thread pool: stray temporary and unreadable files are removed,
 * then the least recently used entries while the total exceeds max_bytes.
 * Until the rebuild is done, gets miss and writes are refused (ST_E_AGAIN).
 * @param dir        Borrowed for the call (copied).
 * @param max_bytes  Bound on the file bytes kept; 0 keeps nothing.
 * @param ready_cb   May be NULL; runs on loop when the rebuild is done.
 * @return 0 or ST_E_NOMEM / a negative errno (mkdir).
 * @thread loop's thread  @blocking mkdir only */
ST_MUST_CHECK int hyd_cache_open(uv_loop_t *loop,
                                 const char *dir,
                                 uint64_t max_bytes,
                                 hyd_cache_ready_cb ready_cb,
                                 void *ready_arg,
                                 hyd_cache_t **out);

/** Is key in the table now (a get may still miss if it is evicted first)?
 * @thread cache's loop  @blocking no */
bool hyd_cache_contains(const hyd_cache_t *c, const char *key);

/** Called with the entry's data (malloc'd, the callee frees it), its
 * CRC-32C (verified against the data) and status 0; or status ST_E_NOTFOUND
 * (miss), ST_E_CORRUPT (the entry failed verification and was removed),
 * ST_E_CLOSED, a negative errno (crc32c 0). */
typedef void (*hyd_cache_get_cb)(void *arg, int status, uint8_t *data, size_t len, uint32_t crc32c);

/** Read an entry on the thread pool, verify its header, key and data
 * checksum, and, when expect_crc32c is not 0, that the data's CRC-32C equals
 * it (the index's checksum of the chunk). A hit marks the entry most recently
 * used (in memory and in the file's mtime).
 * @param key  Borrowed for the call.
 * @return 0 (cb will run later on the loop) or ST_E_NOMEM / ST_E_CLOSED.
 * @thread cache's loop  @blocking no */
ST_MUST_CHECK int hyd_cache_get(
    hyd_cache_t *c, const char *key, uint32_t expect_crc32c, hyd_cache_get_cb cb, void *arg);

/** Write an entry's file (not yet visible to gets).
 * @param data  Borrowed for the call.
 * @param out   Out: on success, pass it to hyd_cache_add() on the loop, or
 *              release it with hyd_cache_file_fini() after unlinking it with
 *              hyd_cache_discard().
 * @return 0, ST_E_AGAIN (not rebuilt yet or closing), ST_E_TOO_LARGE (data
 *         over max_bytes), ST_E_NOMEM, negative errno.
 * @thread any (the thread pool)  @blocking yes: file write */
ST_MUST_CHECK int hyd_cache_write(
    hyd_cache_t *c, const char *key, const void *data, size_t len, hyd_cache_file_t *out);

/** hyd_cache_write() of data whose CRC-32C the caller has already computed
 * (and checked against the index's): the bytes are not hashed again.
 * @param data_crc32c  st_crc32c(0, data, len). */
ST_MUST_CHECK int hyd_cache_write_crc(hyd_cache_t *c,
                                      const char *key,
                                      const void *data,
                                      size_t len,
                                      uint32_t data_crc32c,
                                      hyd_cache_file_t *out);

/** Publish a written file as the entry for its key (replacing an older one),
 * then evict least recently used entries over max_bytes. Takes ownership of
 * f's contents (f is zeroed).
 * @thread cache's loop  @blocking no (unlinks go to the thread pool) */
void hyd_cache_add(hyd_cache_t *c, hyd_cache_file_t *f);

/** Unlink a written file that will not be added. @thread any @blocking yes */
void hyd_cache_discard(hyd_cache_t *c, hyd_cache_file_t *f);

/** Release f->key; f may be zeroed. */
void hyd_cache_file_fini(hyd_cache_file_t *f);

typedef void (*hyd_cache_done_cb)(void *arg, int status);

/** Convenience: hyd_cache_write() on the thread pool, then hyd_cache_add().
 * @param data  Borrowed until cb runs.
 * @param cb    May be NULL.
 * @return 0 (cb will run) or ST_E_NOMEM / ST_E_CLOSED. @thread cache's loop */
ST_MUST_CHECK int hyd_cache_put(
    hyd_cache_t *c, const char *key, const void *data, size_t len, hyd_cache_done_cb cb, void *arg);

/** Run later file I/O (gets, puts, unlinks) on port's pool; NULL = libuv's
 * thread pool (the default).
 * @param port  Borrowed: must outlive the cache (closed after hyd_cache_close's cb).
 * @thread cache's loop */
void hyd_cache_set_port(hyd_cache_t *c, st_pool_port_t *port);

void hyd_cache_stats(const hyd_cache_t *c, hyd_cache_stats_t *out);

/** Path of an entry's file into buf, "" when key is absent (tests, tools). */
void hyd_cache_path(const hyd_cache_t *c, const char *key, char *buf, size_t len);

typedef void (*hyd_cache_closed_cb)(void *arg);
/** Refuse new work, wait for the thread pool work in flight (callbacks of
 * gets and puts still run), free the cache, then cb(arg) on the loop (cb may
 * be NULL). c == NULL is a no-op and cb is not called.
 * @thread cache's loop */
void hyd_cache_close(hyd_cache_t *c, hyd_cache_closed_cb cb, void *arg);

#endif
