/* cli_archive.c - `strata archive ls|cat|verify`: read a bucket (s3://BUCKET/PREFIX) or a
 * file://DIR archive without a broker.
 * Data path: none of the broker's. The archive is what tier_up.c uploaded: one object per
 * sealed segment, <hash>/<topic>/<partition>/<base>-<last>-<term>.seg.zst, in the zstd
 * seekable format of tiering/seg.h. This file opens the object store (tiering/obj.h, with
 * the same AWS_* settings stratad uses) on a private libuv loop and waits for each request:
 *   ls     lists the keys (offset ranges, counts and bytes come from names and sizes), then
 *          reads the first and the last chunk of each partition for its time range;
 *   cat    lists one partition, finds the first object holding --from, then reads its seek
 *          table and its frames with ranged GETs, object after object, and prints the
 *          records of each batch (plog_batch_records) with the consume formatter;
 *   verify GETs every object whole (SHA-256 checked by obj_get), describes it with
 *          tier_seg_object_describe() (the code recovery uses), checks every batch CRC and
 *          that offsets are contiguous and match the key, and, given an index (--index or
 *          the snapshot <prefix>/_strata/remote-index.db), compares rows and chunks.
 * Invariants: 1. every byte from the archive is untrusted: the tiering/ and core/ readers
 *                bounds-check it, and an object is never trusted past its listed size;
 *             2. nothing here writes to the archive or to an index it did not download;
 *             3. problems are reported one line each ("strata: ..." on stderr) and make the
 *                exit code non-zero; a problem in one object never stops verify. */
#include "tools/cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/plog.h"
#include "core/st_crc32c.h"
#include "core/st_log.h"
#include "index/idx.h"
#include "tiering/obj.h"
#include "tiering/seg.h"
#include "tiering/tier.h"

#define ARC_LIST_PAGE     1000
#define ARC_TAIL_BYTES    65536u /* first guess at a seek table's size */
#define ARC_GET_TIMEOUT   600000 /* a whole segment object may be large */
#define ARC_MAX_BATCH_RAW (256u << 20)
#define ARC_INDEX_KEY     "_strata/remote-index.db"

/* ---- The archive: a store on a private loop, blocking requests ---- */

/* A listed object; segment objects have their key parsed. */
typedef struct {
    char *key; /* owned */
    uint64_t size;
    char topic[IDX_MAX_TOPIC_LEN + 1];
    int32_t partition;
    int64_t base, last; /* offsets named by the key */
} arc_obj_t;

typedef struct {
    arc_obj_t *v; /* owned: segment objects, sorted by topic, partition, base */
    size_t n, cap;
    size_t n_other;          /* objects that are not segments */
    bool has_index_snapshot; /* ARC_INDEX_KEY is there */
    arc_obj_t *manifests;    /* owned: topic manifests (_strata/topics/), key and size only */
    size_t n_manifests;
} arc_list_t;

typedef struct {
    uv_loop_t loop;
    obj_store_t *store; /* owned */
    const char *url;    /* borrowed: argv, env, profile or a default */
} arc_t;

/* One request in flight and what came back. */
typedef struct {
    bool done;
    int status;
    char errmsg[512];
    uint8_t *data; /* owned: get */
    size_t len;
    arc_list_t *list; /* borrowed: list appends here */
    char *token;      /* owned: list's next page */
} arc_wait_t;

/* Remember a topic manifest's key (o has its topic and size). @return 0 or ST_E_NOMEM. */
static int arc_note_manifest(arc_list_t *l, arc_obj_t *o, const char *key)
{
    arc_obj_t *v = realloc(l->manifests, (l->n_manifests + 1) * sizeof(*v));
    if (!v)
        return ST_E_NOMEM;
    l->manifests = v;
    if (!(o->key = strdup(key)))
        return ST_E_NOMEM;
    v[l->n_manifests++] = *o;
    return 0;
}

static void on_obj(obj_req_t *req, obj_result_t *res, void *arg)
{
    arc_wait_t *w = arg;
    (void)req;
    w->done = true;
    w->status = res->status;
    snprintf(w->errmsg, sizeof(w->errmsg), "%s", res->errmsg ? res->errmsg : "");
    if (res->status != 0)
        return;
    w->len = res->data_len;
    w->data = obj_result_take_data(res);
    free(w->token);
    w->token = res->next_token ? strdup(res->next_token) : NULL;
    if (res->next_token && !w->token)
        w->status = ST_E_NOMEM;
    arc_list_t *l = w->list;
    for (size_t i = 0; l && w->status == 0 && i < res->n_entries; i++) {
        const char *key = res->entries[i].key;
        arc_obj_t o = {.size = res->entries[i].size_bytes};
        if (tier_parse_object_key(key, o.topic, sizeof(o.topic), &o.partition, &o.base, &o.last) !=
            0) {
            l->n_other++;
            l->has_index_snapshot |= !strcmp(key, ARC_INDEX_KEY);
            if (tier_topic_manifest_name(key, o.topic, sizeof(o.topic)) == 0 &&
                arc_note_manifest(l, &o, key) != 0)
                w->status = ST_E_NOMEM;
            continue;
        }
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 256;
            arc_obj_t *v = realloc(l->v, cap * sizeof(*v));
            if (!v) {
                w->status = ST_E_NOMEM;
                break;
            }
            l->v = v;
            l->cap = cap;
        }
        if (!(o.key = strdup(key))) {
            w->status = ST_E_NOMEM;
            break;
        }
        l->v[l->n++] = o;
    }
}

static const char *wait_why(const arc_wait_t *w)
{
    return w->errmsg[0] ? w->errmsg : st_strerror(w->status);
}

/* Run the loop until the request started with rc (0 or an error) completes. */
static int arc_wait(arc_t *a, arc_wait_t *w, int rc, obj_req_t *req, uint64_t timeout_ms)
{
    if (rc != 0) {
        w->status = rc;
        return rc;
    }
    obj_req_set_timeout(req, timeout_ms);
    while (!w->done)
        uv_run(&a->loop, UV_RUN_ONCE);
    return w->status;
}

static void on_closed(void *arg)
{
    (void)arg;
}

static void arc_close(arc_t *a)
{
    if (!a->store)
        return;
    obj_store_close(a->store, on_closed, NULL);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&a->loop);
    a->store = NULL;
}

/* The archive of the broker whose admin API answers (GET /v1/cluster), when this host can
 * read it: s3://, or a file:// directory that exists from here. NULL: none. */
static const char *running_broker_archive(void)
{
    static char url[PATH_MAX + 8];
    char *body = NULL;
    int tmo = cli_opts.timeout_ms < 2000 ? cli_opts.timeout_ms : 2000;
    long st = cli_http_probe("/v1/cluster", tmo, &body);
    json_t *j = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    const char *u = json_string_value(json_object_get(j, "archive_url"));
    struct stat sb;
    bool ok = u && (!strncmp(u, "s3://", 5) ||
                    (!strncmp(u, "file://", 7) && stat(u + 7, &sb) == 0 && S_ISDIR(sb.st_mode)));
    if (ok)
        snprintf(url, sizeof(url), "%s", u);
    json_decref(j);
    return ok ? url : NULL;
}

/* Default archive: the running broker's (admin API), else what `strata start`
 * (./strata-data) or stratad (log.dir ./data) use here. Says which one it picked. */
static const char *default_archive(void)
{
    static const char *const dirs[] = {"./strata-data/archive", "./data/archive", NULL};
    static char url[PATH_MAX + 8];
    const char *u = running_broker_archive();
    if (u) {
        cli_warn("reading the archive %s of the broker at %s (--archive names another)", u,
                 cli_opts.admin_url);
        return u;
    }
    struct stat st;
    int found = -1, n_found = 0;
    for (int i = 0; dirs[i]; i++)
        if (stat(dirs[i], &st) == 0 && S_ISDIR(st.st_mode) && n_found++ == 0)
            found = i;
    if (found < 0)
        return NULL;
    snprintf(url, sizeof(url), "file://%s", dirs[found]);
    if (n_found > 1)
        cli_warn("reading the archive %s; %s exists too (--archive names it)", url,
                 dirs[found == 0 ? 1 : 0]);
    else
        cli_warn("reading the archive %s (--archive names another)", url);
    return url;
}

/* Open the archive named by --archive, $STRATA_ARCHIVE_URL, the profile or the default.
 * @return 0 or CLI_EXIT_* after printing. */
static int arc_open(arc_t *a, const char *flag_url)
{
    memset(a, 0, sizeof(*a));
    const char *env = getenv("STRATA_ARCHIVE_URL");
    a->url = flag_url                                        ? flag_url
             : env && *env                                   ? env
             : cli_opts.archive_url && *cli_opts.archive_url ? cli_opts.archive_url
                                                             : default_archive();
    if (!a->url)
        return cli_err("no archive found at ./strata-data/archive or ./data/archive: name one "
                       "with --archive file://DIR or s3://BUCKET/PREFIX");
    if (strncmp(a->url, "file://", 7) && strncmp(a->url, "s3://", 5))
        return cli_usage_err("bad archive URL '%s': use file://DIR or s3://BUCKET/PREFIX", a->url);
    struct stat st;
    if (!strncmp(a->url, "file://", 7) && stat(a->url + 7, &st) != 0)
        return cli_err("no archive at %s: %s", a->url,
                       errno == ENOENT ? "no such directory" : strerror(errno));
    if (!strncmp(a->url, "file://", 7) && !S_ISDIR(st.st_mode))
        return cli_err("no archive at %s: not a directory", a->url);
    st_log_set_level(cli_opts.is_verbose ? ST_LOG_INFO : ST_LOG_ERROR);
    int rc = uv_loop_init(&a->loop);
    if (rc != 0)
        return cli_err("cannot start an event loop: %s", uv_strerror(rc));
    obj_config_t oc;
    memset(&oc, 0, sizeof(oc)); /* endpoint, region, credentials: AWS_* as stratad */
    oc.url = a->url;
    oc.request_timeout_ms = ARC_GET_TIMEOUT;
    char err[512] = "";
    rc = obj_store_new(&a->loop, &oc, &a->store, err, sizeof(err));
    if (rc != 0) {
        (void)uv_loop_close(&a->loop);
        a->store = NULL;
        return cli_err("cannot open the archive %s: %s", a->url, err[0] ? err : st_strerror(rc));
    }
    return 0;
}

static int cmp_obj(const void *x, const void *y)
{
    const arc_obj_t *a = x, *b = y;
    int c = strcmp(a->topic, b->topic);
    if (c)
        return c;
    if (a->partition != b->partition)
        return a->partition < b->partition ? -1 : 1;
    return a->base < b->base ? -1 : a->base > b->base;
}

static void arc_list_fini(arc_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].key);
    free(l->v);
    for (size_t i = 0; i < l->n_manifests; i++)
        free(l->manifests[i].key);
    free(l->manifests);
    memset(l, 0, sizeof(*l));
}

/* List every object under prefix ("" = all), sorted. @return 0 or CLI_EXIT_FAIL. */
static int arc_list(arc_t *a, const char *prefix, arc_list_t *l)
{
    memset(l, 0, sizeof(*l));
    char *token = NULL;
    do {
        arc_wait_t w = {.list = l};
        obj_req_t *req = NULL;
        int rc = obj_list(a->store, prefix, token, ARC_LIST_PAGE, on_obj, &w, &req);
        free(token);
        token = NULL;
        if (arc_wait(a, &w, rc, req, (uint64_t)cli_opts.timeout_ms) != 0) {
            free(w.token);
            free(w.data);
            arc_list_fini(l);
            return cli_err("cannot list the archive %s: %s", a->url, wait_why(&w));
        }
        free(w.data);
        token = w.token;
    } while (token);
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(*l->v), cmp_obj);
    return 0;
}

/* arc_open, then arc_list of prefix. @return 0 (close a later) or CLI_EXIT_* after printing. */
static int arc_open_list(arc_t *a, const char *url, const char *prefix, arc_list_t *l)
{
    int rc = arc_open(a, url);
    if (rc == 0 && (rc = arc_list(a, prefix, l)) != 0)
        arc_close(a);
    return rc;
}

/* GET a byte range (or the whole object when len is 0). @return 0 or an st_err; *why set. */
static int arc_get(arc_t *a,
                   const char *key,
                   uint64_t off,
                   uint64_t len,
                   uint8_t **data,
                   size_t *data_len,
                   char *why,
                   size_t why_len)
{
    arc_wait_t w = {0};
    obj_req_t *req = NULL;
    int rc = len ? obj_get_range(a->store, key, off, len, on_obj, &w, &req)
                 : obj_get(a->store, key, on_obj, &w, &req);
    rc = arc_wait(a, &w, rc, req, ARC_GET_TIMEOUT);
    free(w.token);
    if (rc == 0 && len && w.len != len)
        rc = ST_E_MALFORMED; /* shorter than the listing or the seek table said */
    if (rc != 0) {
        free(w.data);
        snprintf(why, why_len, "%s",
                 rc == ST_E_MALFORMED ? "object shorter than expected"
                 : rc == ST_E_CORRUPT ? "SHA-256 of the object does not match"
                                      : wait_why(&w));
        return rc;
    }
    *data = w.data;
    *data_len = w.len;
    return 0;
}

/* End (exclusive) of the run of objects of the partition starting at i. */
static size_t part_end(const arc_list_t *l, size_t i)
{
    size_t j = i + 1;
    while (j < l->n && l->v[j].partition == l->v[i].partition &&
           !strcmp(l->v[j].topic, l->v[i].topic))
        j++;
    return j;
}

/* ---- Reading objects by range: seek table, frames, batches ---- */

/* The seek table of o, from one or two ranged GETs of its tail. @return 0 or st_err. */
static int read_table(arc_t *a, const arc_obj_t *o, tier_seg_table_t *t, char *why, size_t why_len)
{
    memset(t, 0, sizeof(*t));
    if (o->size < TIER_SEG_FOOTER_SIZE) {
        snprintf(why, why_len, "object too small for a seek table");
        return ST_E_MALFORMED;
    }
    uint64_t want = o->size < ARC_TAIL_BYTES ? o->size : ARC_TAIL_BYTES;
    for (int attempt = 0; attempt < 2; attempt++) {
        uint8_t *tail;
        size_t len;
        int rc = arc_get(a, o->key, o->size - want, want, &tail, &len, why, why_len);
        if (rc != 0)
            return rc;
        rc = tier_seg_table_parse(tail, len, o->size, t);
        free(tail);
        if (rc == ST_E_AGAIN && t->table_size <= o->size && attempt == 0) {
            want = t->table_size;
            continue;
        }
        if (rc != 0)
            snprintf(why, why_len, "seek table: %s", st_strerror(rc));
        return rc;
    }
    return ST_E_MALFORMED;
}

/* Frame i of o, decoded and checked against the seek table's checksum. */
static int read_frame(arc_t *a,
                      const arc_obj_t *o,
                      const tier_seg_table_t *t,
                      uint32_t i,
                      uint8_t **raw,
                      size_t *raw_len,
                      char *why,
                      size_t why_len)
{
    const tier_seg_frame_t *f = &t->frames[i];
    uint8_t *frame;
    size_t len;
    int rc = arc_get(a, o->key, f->obj_pos, f->obj_len, &frame, &len, why, why_len);
    if (rc != 0)
        return rc;
    rc = tier_seg_frame_decode(frame, len, f, t->has_checksums, TIER_SEG_MAX_FRAME_RAW, raw,
                               raw_len);
    free(frame);
    if (rc != 0)
        snprintf(why, why_len, "frame %u: %s", i, st_strerror(rc));
    return rc;
}

typedef int (*batch_fn)(void *arg, const plog_batch_hdr_t *h, const uint8_t *p, size_t len);

/* Walk the batches of decoded frame bytes, validating each (lengths, magic, CRC-32C).
 * @return 0, the first st_err (why names the batch), or fn's error. */
static int
walk_batches(const uint8_t *raw, size_t raw_len, batch_fn fn, void *arg, char *why, size_t why_len)
{
    size_t pos = 0;
    while (pos < raw_len) {
        plog_batch_hdr_t h;
        const char *what = "truncated batch";
        size_t avail = raw_len - pos;
        int rc = plog_batch_parse_hdr(raw + pos, avail, &h);
        if (rc == 0 &&
            (h.batch_length < 0 || (size_t)h.batch_length > avail - PLOG_BATCH_LOG_OVERHEAD))
            rc = ST_E_MALFORMED;
        size_t blen = rc == 0 ? (size_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD : 0;
        if (rc == 0)
            rc = plog_batch_validate_stored(raw + pos, blen, &h, &what);
        if (rc != 0) {
            snprintf(why, why_len, "batch at byte %zu of its frame: %s", pos, what);
            return rc;
        }
        if ((rc = fn(arg, &h, raw + pos, blen)) != 0)
            return rc;
        pos += blen;
    }
    return 0;
}

/* ---- Output helpers ---- */

/* "2024-01-31T12:00:00.123Z", or "-" for a negative timestamp. */
static const char *fmt_ts(int64_t ms, char *buf, size_t cap)
{
    if (ms < 0) {
        snprintf(buf, cap, "-");
        return buf;
    }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03dZ", (int)(ms % 1000));
    return buf;
}

/* Flags of the archive commands (each accepts the ones its help lists). */
static const struct option arc_longs[] = {
    {"archive", required_argument, NULL, 'a'}, {"from", required_argument, NULL, 'F'},
    {"num", required_argument, NULL, 'n'},     {"index", required_argument, NULL, 'i'},
    {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};

/* ---- ls ---- */

/* The first (or last) chunk of o, described from its seek table and one frame. */
static int
edge_chunk(arc_t *a, const arc_obj_t *o, bool is_last, tier_seg_chunk_t *c, char *why, size_t cap)
{
    tier_seg_table_t t;
    int rc = read_table(a, o, &t, why, cap);
    if (rc == 0 && t.n_frames == 0) {
        rc = ST_E_MALFORMED;
        snprintf(why, cap, "the seek table lists no frame");
    }
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    if (rc == 0)
        rc = read_frame(a, o, &t, is_last ? t.n_frames - 1 : 0, &raw, &raw_len, why, cap);
    if (rc == 0 && (rc = tier_seg_chunk_describe(raw, raw_len, c)) != 0)
        snprintf(why, cap, "batches of a frame: %s", st_strerror(rc));
    free(raw);
    tier_seg_table_fini(&t);
    return rc;
}

typedef struct {
    size_t first, end; /* its objects: [first, end) of the list */
    uint64_t bytes;
    int64_t first_ts; /* baseTimestamp of the first batch, -1 when unreadable */
    int64_t last_ts;  /* largest maxTimestamp of the last chunk, -1 when unreadable */
} ls_part_t;

/* Topic manifests of the archive (tier_topics.c), for ls. */
typedef struct {
    tier_recover_topic_t *v; /* owned: parsed manifests */
    size_t n;
} ls_topics_t;

static void ls_topics_fini(ls_topics_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        tier_recover_topic_fini(&t->v[i]);
    free(t->v);
}

/* Read and parse the manifests of topic (NULL: all). @return 0 or CLI_EXIT_FAIL after
 * printing (unreadable manifests are reported and skipped). */
static int ls_read_topics(arc_t *a, const arc_list_t *l, const char *topic, ls_topics_t *t)
{
    int rc = 0;
    memset(t, 0, sizeof(*t));
    if (l->n_manifests && !(t->v = calloc(l->n_manifests, sizeof(*t->v))))
        return cli_err("out of memory");
    for (size_t i = 0; i < l->n_manifests; i++) {
        const arc_obj_t *m = &l->manifests[i];
        if (topic && strcmp(topic, m->topic))
            continue;
        uint8_t *json = NULL;
        size_t len = 0;
        char why[512];
        int r = m->size > TIER_TOPICS_MAX_JSON
                    ? ST_E_TOO_LARGE
                    : arc_get(a, m->key, 0, 0, &json, &len, why, sizeof(why));
        if (r == 0)
            r = tier_topic_manifest_parse((const char *)json, len, &t->v[t->n]);
        free(json);
        if (r == 0)
            t->n++;
        else
            rc = cli_err("cannot read the topic manifest %s: %s", m->key,
                         r == ST_E_CORRUPT ? "not a valid manifest" : st_strerror(r));
    }
    return rc;
}

static void ls_print_topics_text(const ls_topics_t *t)
{
    if (!t->n)
        return;
    printf("\n%-*s %-10s %s\n", 30, "TOPIC", "PARTITIONS", "CONFIGS");
    for (size_t i = 0; i < t->n; i++) {
        printf("%-30s %-10d ", t->v[i].name, (int)t->v[i].n_partitions);
        for (int k = 0; k < t->v[i].n_configs; k++)
            printf("%s%s=%s", k ? "," : "", t->v[i].configs[k].key, t->v[i].configs[k].value);
        puts(t->v[i].n_configs ? "" : "-");
    }
}

static void ls_print_topics_json(const ls_topics_t *t)
{
    fputs(",\"topics\":[", stdout);
    for (size_t i = 0; i < t->n; i++) {
        printf("%s{\"topic\":", i ? "," : "");
        cli_json_cstr(stdout, t->v[i].name);
        printf(",\"partitions\":%d,\"configs\":{", (int)t->v[i].n_partitions);
        for (int k = 0; k < t->v[i].n_configs; k++) {
            fputs(k ? "," : "", stdout);
            cli_json_cstr(stdout, t->v[i].configs[k].key);
            putchar(':');
            cli_json_cstr(stdout, t->v[i].configs[k].value);
        }
        fputs("}}", stdout);
    }
    putchar(']');
}

static void ls_print_text(const arc_list_t *l, const ls_part_t *p, size_t n)
{
    int w = 5;
    for (size_t i = 0; i < n; i++) {
        int len = (int)strlen(l->v[p[i].first].topic);
        w = len > w ? len : w;
    }
    printf("%-*s %-9s %-12s %-12s %-24s %-24s %-7s %s\n", w, "TOPIC", "PARTITION", "FIRST-OFFSET",
           "LAST-OFFSET", "FIRST-TIMESTAMP", "LAST-TIMESTAMP", "OBJECTS", "BYTES");
    for (size_t i = 0; i < n; i++) {
        const arc_obj_t *f = &l->v[p[i].first], *e = &l->v[p[i].end - 1];
        char t1[40], t2[40];
        printf("%-*s %-9d %-12" PRId64 " %-12" PRId64 " %-24s %-24s %-7zu %" PRIu64 "\n", w,
               f->topic, (int)f->partition, f->base, e->last, fmt_ts(p[i].first_ts, t1, 40),
               fmt_ts(p[i].last_ts, t2, 40), p[i].end - p[i].first, p[i].bytes);
    }
}

static void ls_print_json(
    const arc_t *a, const arc_list_t *l, const ls_part_t *p, size_t n, const ls_topics_t *t)
{
    fputs("{\"archive\":", stdout);
    cli_json_cstr(stdout, a->url);
    fputs(",\"partitions\":[", stdout);
    for (size_t i = 0; i < n; i++) {
        const arc_obj_t *f = &l->v[p[i].first], *e = &l->v[p[i].end - 1];
        printf("%s{\"topic\":", i ? "," : "");
        cli_json_cstr(stdout, f->topic);
        printf(",\"partition\":%d,\"first_offset\":%" PRId64 ",\"last_offset\":%" PRId64,
               (int)f->partition, f->base, e->last);
        if (p[i].first_ts >= 0)
            printf(",\"first_timestamp\":%" PRId64, p[i].first_ts);
        else
            fputs(",\"first_timestamp\":null", stdout);
        if (p[i].last_ts >= 0)
            printf(",\"last_timestamp\":%" PRId64, p[i].last_ts);
        else
            fputs(",\"last_timestamp\":null", stdout);
        printf(",\"objects\":%zu,\"bytes\":%" PRIu64 "}", p[i].end - p[i].first, p[i].bytes);
    }
    putchar(']');
    ls_print_topics_json(t);
    printf(",\"other_objects\":%zu}\n", l->n_other);
}

static const char ls_help[] =
    "Usage: strata archive ls [--archive URL] [TOPIC]\n"
    "List what an archive holds, without a broker: one row per partition with its first\n"
    "and last archived offsets, the timestamps of its first record batch and of its last\n"
    "chunk (largest batch maxTimestamp there), its objects and their bytes; then the topic\n"
    "manifests the broker keeps in the archive (partition count and config overrides).\n\n"
    "Flags:\n"
    "  -a, --archive URL   file://DIR or s3://BUCKET/PREFIX (default: $STRATA_ARCHIVE_URL,\n"
    "                      then 'archive_url' in ~/.config/strata/strata.yaml, then\n"
    "                      the archive of the broker whose admin API answers (--admin-url),\n"
    "                      then ./strata-data/archive (strata start) or ./data/archive\n"
    "                      (stratad), whichever exists; stderr says which one is read).\n"
    "                      s3:// uses AWS_ENDPOINT_URL, AWS_REGION,\n"
    "                      AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY like stratad.\n"
    "      --format json   one JSON document (timestamps in epoch ms)\n\n"
    "Examples:\n"
    "  strata archive ls\n"
    "  strata archive ls orders --archive file:///var/lib/strata/archive\n"
    "  AWS_ENDPOINT_URL=http://127.0.0.1:9000 strata archive ls --archive s3://strata/prod "
    "--format json\n";

static int cmd_ls(int argc, char **argv)
{
    const char *url = NULL;
    int c;
    while ((c = cli_getopt(argc, argv, "a:h", arc_longs)) != -1) {
        if (c == 'a') {
            url = optarg;
        } else if (c == 'h') {
            fputs(ls_help, stdout);
            return CLI_EXIT_OK;
        } else {
            return CLI_EXIT_USAGE;
        }
    }
    if (argc - optind > 1)
        return cli_usage_err("archive ls takes at most one TOPIC");
    const char *topic = optind < argc ? argv[optind] : NULL;
    arc_t a;
    arc_list_t l;
    int rc = arc_open_list(&a, url, "", &l);
    if (rc)
        return rc;
    ls_part_t *parts = calloc(l.n ? l.n : 1, sizeof(*parts));
    size_t n = 0;
    if (!parts)
        rc = cli_err("out of memory");
    for (size_t i = 0; !rc && i < l.n;) {
        size_t end = part_end(&l, i);
        if (!topic || !strcmp(topic, l.v[i].topic)) {
            ls_part_t *p = &parts[n++];
            *p = (ls_part_t){i, end, 0, -1, -1};
            for (size_t j = i; j < end; j++)
                p->bytes += l.v[j].size;
            tier_seg_chunk_t first, last;
            char why[512];
            if (edge_chunk(&a, &l.v[i], false, &first, why, sizeof(why)) == 0)
                p->first_ts = first.first_ts;
            else
                rc = cli_err("cannot read %s: %s", l.v[i].key, why);
            if (edge_chunk(&a, &l.v[end - 1], true, &last, why, sizeof(why)) == 0)
                p->last_ts = last.max_ts;
            else
                rc = cli_err("cannot read %s: %s", l.v[end - 1].key, why);
        }
        i = end;
    }
    ls_topics_t t;
    if (ls_read_topics(&a, &l, topic, &t) != 0)
        rc = CLI_EXIT_FAIL;
    if (topic && n == 0 && t.n == 0 && parts) {
        rc = cli_err("unknown topic '%s' in the archive %s", topic, a.url);
    } else if (parts && cli_opts.is_json) {
        ls_print_json(&a, &l, parts, n, &t);
    } else if (parts) {
        ls_print_text(&l, parts, n);
        ls_print_topics_text(&t);
    }
    ls_topics_fini(&t);
    free(parts);
    arc_list_fini(&l);
    arc_close(&a);
    return rc;
}

/* ---- cat ---- */

#define CAT_DONE ST_E_CANCELED /* -n records printed: stop reading */

typedef struct {
    const char *topic;
    int32_t partition;
    bool by_time;     /* from is a timestamp, else an offset */
    int64_t from;     /* first offset, or the time the first record must reach */
    bool has_started; /* a record was printed (by time: later ones print whatever their time) */
    int64_t num;      /* records to print, 0 = all */
    int64_t printed;
    const cli_fmt_t *fmt; /* NULL: JSON lines */
    char why[256];
    bool read_committed;    /* skip the records of aborted transactions */
    tier_seg_aborted_t *ab; /* owned: the objects' txn tables, by producer then offset */
    size_t n_ab;
} cat_t;

static int cat_record(void *arg, const plog_batch_hdr_t *h, const plog_record_t *rec)
{
    cat_t *c = arg;
    (void)h;
    if (c->by_time ? !c->has_started && rec->timestamp < c->from : rec->offset < c->from)
        return 0;
    c->has_started = true;
    cli_header_t *hs = NULL;
    plog_header_t *ph = NULL;
    int32_t n = 0;
    if (rec->n_headers > 0) { /* n_headers <= headers_len: bounded by the batch */
        ph = calloc((size_t)rec->n_headers, sizeof(*ph));
        hs = calloc((size_t)rec->n_headers, sizeof(*hs));
        if (!ph || !hs) {
            free(ph);
            free(hs);
            return ST_E_NOMEM;
        }
        n = plog_record_headers(rec, ph, rec->n_headers);
        for (int32_t i = 0; i < n; i++)
            hs[i] = (cli_header_t){(const char *)ph[i].key, (size_t)ph[i].key_len,
                                   (const char *)ph[i].value,
                                   ph[i].value ? (size_t)ph[i].value_len : 0};
    }
    cli_record_t r = {.topic = c->topic,
                      .partition = c->partition,
                      .offset = rec->offset,
                      .timestamp = rec->timestamp,
                      .key = (const char *)rec->key,
                      .key_len = rec->key ? (size_t)rec->key_len : 0,
                      .value = (const char *)rec->value,
                      .value_len = rec->value ? (size_t)rec->value_len : 0,
                      .headers = hs,
                      .n_headers = (size_t)n};
    if (c->fmt)
        cli_record_print_fmt(c->fmt, &r);
    else
        cli_record_print_json(&r);
    free(ph);
    free(hs);
    c->printed++;
    return c->num && c->printed >= c->num ? CAT_DONE : 0;
}

static int cmp_ab(const void *x, const void *y)
{
    const tier_seg_aborted_t *a = x, *b = y;
    if (a->pid != b->pid)
        return (a->pid > b->pid) - (a->pid < b->pid);
    return (a->first_offset > b->first_offset) - (a->first_offset < b->first_offset);
}

/* Is the transactional batch of pid at offset part of an aborted transaction
 * (first offset <= offset < its ABORT marker)? A producer's transactions do
 * not overlap, so the last one starting at or before offset decides. */
static bool cat_is_aborted(const cat_t *c, int64_t pid, int64_t offset)
{
    size_t lo = 0, hi = c->n_ab;
    while (lo < hi) { /* first entry after (pid, offset) */
        size_t mid = lo + (hi - lo) / 2;
        const tier_seg_aborted_t *e = &c->ab[mid];
        if (e->pid < pid || (e->pid == pid && e->first_offset <= offset))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && c->ab[lo - 1].pid == pid && c->ab[lo - 1].last_offset > offset;
}

static int cat_batch(void *arg, const plog_batch_hdr_t *h, const uint8_t *p, size_t len)
{
    cat_t *c = arg;
    if (h->attributes & 0x20)
        return 0; /* a control batch (transaction marker): consumers never see it */
    if (c->read_committed && (h->attributes & 0x10) &&
        cat_is_aborted(c, h->producer_id, h->base_offset))
        return 0;
    if (c->by_time ? !c->has_started && h->max_timestamp < c->from
                   : h->base_offset + h->last_offset_delta < c->from)
        return 0;
    int rc = plog_batch_records(p, len, ARC_MAX_BATCH_RAW, cat_record, c);
    if (rc != 0 && rc != CAT_DONE)
        snprintf(c->why, sizeof(c->why), "records of the batch at offset %" PRId64 ": %s",
                 h->base_offset, st_strerror(rc));
    return rc;
}

/* Print the records of o from c->from on. @return 0, CAT_DONE, or an error after printing. */
static int cat_object(arc_t *a, const arc_obj_t *o, cat_t *c)
{
    char why[512];
    tier_seg_table_t t;
    int rc = read_table(a, o, &t, why, sizeof(why));
    for (uint32_t i = 0; rc == 0 && i < t.n_frames; i++) {
        uint8_t *raw = NULL;
        size_t raw_len = 0;
        c->why[0] = '\0';
        rc = read_frame(a, o, &t, i, &raw, &raw_len, why, sizeof(why));
        if (rc == 0)
            rc = walk_batches(raw, raw_len, cat_batch, c, why, sizeof(why));
        if (rc != 0 && rc != CAT_DONE && c->why[0])
            snprintf(why, sizeof(why), "frame %u: %s", i, c->why);
        free(raw);
    }
    tier_seg_table_fini(&t);
    fflush(stdout);
    if (rc != 0 && rc != CAT_DONE)
        cli_err("cannot read %s: %s", o->key, why);
    return rc;
}

/* Add o's aborted transactions (its txn table, read from its tail) to c->ab.
 * An object without a chunk table predates txn tables: none. */
static int cat_object_aborted(arc_t *a, const arc_obj_t *o, cat_t *c)
{
    char why[512];
    uint64_t want = o->size < ARC_TAIL_BYTES ? o->size : ARC_TAIL_BYTES;
    for (int attempt = 0; attempt < 3; attempt++) {
        uint8_t *tail;
        size_t len;
        int rc = arc_get(a, o->key, o->size - want, want, &tail, &len, why, sizeof(why));
        if (rc != 0)
            return cli_err("cannot read %s: %s", o->key, why);
        tier_seg_info_t info;
        uint64_t need = 0;
        rc = tier_seg_tail_describe(tail, len, o->size, &need, &info);
        free(tail);
        if (rc == ST_E_AGAIN && need > want && need <= o->size) {
            want = need;
            continue;
        }
        if (rc == ST_E_NOTFOUND)
            return 0;
        if (rc != 0)
            return cli_err("cannot read %s: tables: %s", o->key, st_strerror(rc));
        tier_seg_aborted_t *v =
            info.n_aborted ? realloc(c->ab, (c->n_ab + info.n_aborted) * sizeof(*v)) : c->ab;
        if (info.n_aborted && !v) {
            tier_seg_info_fini(&info);
            return cli_err("out of memory");
        }
        if (info.n_aborted)
            memcpy(v + c->n_ab, info.aborted, info.n_aborted * sizeof(*v));
        c->ab = v;
        c->n_ab += info.n_aborted;
        tier_seg_info_fini(&info);
        return 0;
    }
    return cli_err("cannot read %s: tables larger than the object says", o->key);
}

/* No object of topic/partition: say whether the topic or the partition is unknown. */
static int cat_unknown(arc_t *a, const char *topic, int32_t partition)
{
    arc_list_t all;
    if (arc_list(a, "", &all) != 0)
        return CLI_EXIT_FAIL;
    char parts[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < all.n; i = part_end(&all, i))
        if (!strcmp(all.v[i].topic, topic) && len < sizeof(parts) - 16)
            len += (size_t)snprintf(parts + len, sizeof(parts) - len, "%s%d", len ? "," : "",
                                    (int)all.v[i].partition);
    arc_list_fini(&all);
    if (!len)
        return cli_err("unknown topic '%s' in the archive %s", topic, a->url);
    return cli_err("unknown partition %s/%d in the archive %s (archived partitions: %s)", topic,
                   (int)partition, a->url, parts);
}

static const char cat_help[] =
    "Usage: strata archive cat TOPIC PARTITION [--from OFFSET|@TIME|start] [-n N] [-f FMT]\n"
    "                          [--read-committed] [--archive URL]\n"
    "Print archived records of one partition without a broker, from the first object\n"
    "holding --from onward, object after object (of objects starting at one offset, a\n"
    "range archived again or a compacted rewrite, the last in key order, as recovery).\n"
    "Every frame's zstd checksum and every batch's CRC-32C are checked; compressed\n"
    "batches (gzip, snappy, lz4, zstd) are decoded.\n"
    "Text output prints each record's value on its own line; --format json prints one JSON\n"
    "object per record (topic, key, value, headers, timestamp, partition, offset).\n\n"
    "Flags:\n"
    "  -F, --from SPEC     start: an offset, start (the first archived offset, default), or\n"
    "                      @TIME: the first record whose timestamp is at or after TIME\n"
    "                      (epoch ms, 2024-01-31, 2024-01-31T12:00:00 UTC, or -10m relative)\n"
    "  -n, --num N         stop after N records\n"
    "  -f, --format FMT    text (default), json, or a record format: %t topic, %k key,\n"
    "                      %v value, %o offset, %p partition, %d or %T timestamp ms,\n"
    "                      %h headers (k=v,...), %H header count,\n"
    "                      %K key length, %V value length, %% percent; \\n \\t escapes;\n"
    "                      %k{hex}, %v{base64}: encoded key or value; %d{unix_sec} (also\n"
    "                      unix_milli, unix_micro, unix_nano), %d{strftime[%F %T]} or\n"
    "                      %d{go[2006-01-02T15:04:05Z07:00]}: UTC time\n"
    "      --read-committed  skip the records of aborted transactions, as a read_committed\n"
    "                      consumer does, using the objects' txn tables (every object from\n"
    "                      the first one read to the archive's end is asked for its table);\n"
    "                      a transaction whose marker is not archived yet prints as committed\n"
    "                      (default: every record, as read_uncommitted)\n"
    "  -a, --archive URL   the archive (default as for 'strata archive ls')\n"
    "\n"
    "Exit codes: 1 when the archive, topic or partition is unknown, the offset is outside\n"
    "the archive, or an object is unreadable or corrupt; 2 for bad flags.\n\n"
    "Examples:\n"
    "  strata archive cat orders 0 --from 0 -n 10\n"
    "  strata archive cat orders 0 --from @2024-01-31T12:00:00 -f '%o %T %k=%v\\n'\n"
    "  strata archive cat orders 3 --from 1500 --format json --archive s3://strata/prod\n";

static int cat_parse(int argc, char **argv, cat_t *c, const char **url, const char **from)
{
    static cli_fmt_t fmt;
    bool has_fmt = false;
    int opt;
    static const struct option longs[] = {{"archive", required_argument, NULL, 'a'},
                                          {"from", required_argument, NULL, 'F'},
                                          {"num", required_argument, NULL, 'n'},
                                          {"format", required_argument, NULL, 'f'},
                                          {"help", no_argument, NULL, 'h'},
                                          {"read-committed", no_argument, NULL, 'R'},
                                          {NULL, 0, NULL, 0}};
    while ((opt = cli_getopt(argc, argv, "a:F:n:f:h", longs)) != -1) {
        switch (opt) {
        case 'R':
            c->read_committed = true;
            break;
        case 'a':
            *url = optarg;
            break;
        case 'F':
            *from = optarg;
            break;
        case 'n':
            if (cli_parse_i64(optarg, 1, INT64_MAX, &c->num))
                return cli_usage_err("bad --num '%s': use a positive number", optarg);
            break;
        case 'f':
            if (cli_record_format_arg(optarg, &fmt, &has_fmt))
                return CLI_EXIT_USAGE;
            break;
        case 'h':
            fputs(cat_help, stdout);
            return -1;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    c->fmt = cli_record_format(&fmt, has_fmt, false);
    if (argc - optind != 2)
        return cli_usage_err("archive cat needs TOPIC and PARTITION");
    int64_t v;
    c->topic = argv[optind];
    if (cli_parse_i64(argv[optind + 1], 0, INT32_MAX, &v))
        return cli_usage_err("bad PARTITION '%s': use a number", argv[optind + 1]);
    c->partition = (int32_t)v;
    if (!strcmp(*from, "start") || !strcmp(*from, "oldest")) {
        c->from = -1;
    } else if ((*from)[0] == '@') {
        c->by_time = true;
        if (cli_parse_timestamp_ms(*from + 1, &c->from))
            return cli_usage_err("bad --from '%s': use an offset, start, or @TIME (epoch ms, "
                                 "2024-01-31, 2024-01-31T12:00:00 UTC, -10m)",
                                 *from);
    } else if (cli_parse_i64(*from, 0, INT64_MAX, &c->from)) {
        return cli_usage_err("bad --from '%s': use an offset, start, or @TIME (epoch ms, "
                             "2024-01-31, 2024-01-31T12:00:00 UTC, -10m)",
                             *from);
    }
    return 0;
}

/* First object to read for an offset: the one holding it, or after a gap the next one.
 * @return its index, or -1 after printing that the offset is outside the archive. */
static long cat_first_object(const arc_list_t *l, cat_t *c)
{
    const arc_obj_t *lo = &l->v[0], *hi = &l->v[l->n - 1];
    if (c->from < 0)
        c->from = lo->base;
    if (c->from < lo->base) {
        cli_err("offset %" PRId64 " is below the archive of %s/%d: its first archived offset "
                "is %" PRId64,
                c->from, c->topic, (int)c->partition, lo->base);
        return -1;
    }
    if (c->from > hi->last) {
        cli_err("offset %" PRId64 " is above the archive of %s/%d: its last archived offset "
                "is %" PRId64,
                c->from, c->topic, (int)c->partition, hi->last);
        return -1;
    }
    size_t i = 0;
    while (l->v[i].last < c->from)
        i++;
    return (long)i;
}

/* Of objects of one partition with one base offset (a range of an active
 * segment taken again after a crash lost its index commit; a compacted
 * rewrite and the object it replaces, before the orphan is collected), keep
 * the one recovery indexes: the last key in byte order. */
static void arc_drop_superseded(arc_list_t *l)
{
    size_t w = 0;
    for (size_t i = 0; i < l->n; i++) {
        arc_obj_t *prev = w > 0 ? &l->v[w - 1] : NULL;
        if (prev && prev->partition == l->v[i].partition && prev->base == l->v[i].base &&
            !strcmp(prev->topic, l->v[i].topic)) {
            if (strcmp(l->v[i].key, prev->key) > 0) {
                free(prev->key);
                *prev = l->v[i];
            } else {
                free(l->v[i].key);
            }
            continue;
        }
        l->v[w++] = l->v[i];
    }
    l->n = w;
}

static int cmd_cat(int argc, char **argv)
{
    cat_t c = {0};
    const char *url = NULL, *from = "start";
    int rc = cat_parse(argc, argv, &c, &url, &from);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    /* A partition's keys share "<hash>/<topic>/<partition>/". */
    char prefix[IDX_MAX_KEY_LEN + 64];
    tier_object_key(c.topic, c.partition, 0, 0, 0, prefix, sizeof(prefix));
    char *slash = strchr(prefix, '/');
    slash = slash ? strchr(slash + 1, '/') : NULL;
    slash = slash ? strchr(slash + 1, '/') : NULL;
    if (slash)
        slash[1] = '\0';
    arc_t a;
    arc_list_t l;
    if ((rc = arc_open_list(&a, url, prefix, &l)) != 0)
        return rc;
    arc_drop_superseded(&l);
    if (l.n == 0) {
        rc = cat_unknown(&a, c.topic, c.partition);
    } else {
        long first = c.by_time ? 0 : cat_first_object(&l, &c);
        rc = first < 0 ? CLI_EXIT_FAIL : 0;
        /* An aborted transaction's marker may lie in any later object. */
        for (size_t i = first < 0 ? l.n : (size_t)first; rc == 0 && c.read_committed && i < l.n;
             i++)
            rc = cat_object_aborted(&a, &l.v[i], &c);
        if (c.n_ab > 1)
            qsort(c.ab, c.n_ab, sizeof(*c.ab), cmp_ab);
        for (size_t i = first < 0 ? l.n : (size_t)first; rc == 0 && i < l.n; i++) {
            if (i > 0 && l.v[i].base > l.v[i - 1].last + 1 && c.has_started)
                fprintf(stderr,
                        "strata: warning: offsets %" PRId64 "-%" PRId64
                        " of %s/%d are in no archived object\n",
                        l.v[i - 1].last + 1, l.v[i].base - 1, c.topic, (int)c.partition);
            int r = cat_object(&a, &l.v[i], &c);
            if (r == CAT_DONE)
                break;
            rc = r ? CLI_EXIT_FAIL : 0;
        }
        char t[40];
        if (rc == 0 && c.by_time && !c.has_started)
            rc = cli_err("no archived record of %s/%d has a timestamp at or after %s", c.topic,
                         (int)c.partition, fmt_ts(c.from, t, sizeof(t)));
    }
    free(c.ab);
    arc_list_fini(&l);
    arc_close(&a);
    return rc;
}

/* ---- verify ---- */

typedef struct {
    arc_t *a;
    idx_t *idx;         /* owned: the index to compare with, NULL for none */
    idx_client_t *ic;   /* owned: its client on a->loop */
    char tmp[PATH_MAX]; /* owned file: the downloaded snapshot, "" if none */
    const char *index_name;
    bool is_tty; /* progress on stderr */
    int64_t objects, bytes, batches, partitions, orphans, missing, rows;
    char **problems; /* owned: one line each, for --format json */
    size_t n_problems, cap_problems;
    /* the object being checked */
    const arc_obj_t *o;
    int64_t next; /* offset the next batch must start at, -1 before the first */
    char why[256];
} ver_t;

static void problem(ver_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(ver_t *v, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (v->is_tty)
        fputs("\r\033[K", stderr);
    cli_err("%s", line);
    if (v->n_problems == v->cap_problems) {
        size_t cap = v->cap_problems ? v->cap_problems * 2 : 16;
        char **p = realloc(v->problems, cap * sizeof(*p));
        if (!p)
            return; /* printed; the count below still makes the exit code non-zero */
        v->problems = p;
        v->cap_problems = cap;
    }
    if ((v->problems[v->n_problems] = strdup(line)) != NULL)
        v->n_problems++;
}

static int ver_batch(void *arg, const plog_batch_hdr_t *h, const uint8_t *p, size_t len)
{
    ver_t *v = arg;
    (void)p;
    (void)len;
    /* Gaps are allowed: compaction removes records and keeps offsets. */
    if (v->next >= 0 && h->base_offset < v->next) {
        snprintf(v->why, sizeof(v->why),
                 "offsets overlap: a batch starts at %" PRId64 ", expected %" PRId64 " or later",
                 h->base_offset, v->next);
        return ST_E_MALFORMED;
    }
    v->next = h->base_offset + h->last_offset_delta + 1;
    v->batches++;
    return 0;
}

static int ver_frame(
    void *arg, uint32_t index, const tier_seg_chunk_t *chunk, const uint8_t *raw, size_t raw_len)
{
    ver_t *v = arg;
    (void)index;
    (void)chunk;
    return walk_batches(raw, raw_len, ver_batch, v, v->why, sizeof(v->why));
}

/* ---- verify: blocking index calls on the archive's loop ---- */

typedef struct {
    bool done;
    int status;
    bool found;
    idx_segment_t seg; /* key copied into key[] */
    idx_chunk_t chunk;
    char key[IDX_MAX_KEY_LEN + 1];
    char **keys; /* owned: idx_list_keys page */
    size_t n_keys;
    char *next_after; /* owned */
} iw_t;

static void iw_run(ver_t *v, iw_t *w, int rc)
{
    if (rc != 0) {
        w->status = rc;
        return;
    }
    while (!w->done)
        uv_run(&v->a->loop, UV_RUN_ONCE);
}

static void on_segs(void *arg, int status, const idx_segment_t *segs, size_t n, int64_t next)
{
    iw_t *w = arg;
    (void)next;
    w->done = true;
    w->status = status;
    if (status == 0 && n > 0) {
        w->found = true;
        w->seg = segs[0];
        snprintf(w->key, sizeof(w->key), "%s", segs[0].object_key);
        w->seg.object_key = w->key;
        w->seg.topic = NULL;
    }
}

static void on_loc(void *arg, int status, const idx_loc_t *loc)
{
    iw_t *w = arg;
    w->done = true;
    w->status = status;
    if (status == 0) {
        w->found = true;
        w->chunk = loc->chunk;
        snprintf(w->key, sizeof(w->key), "%s", loc->seg.object_key);
    }
}

static void on_keys(void *arg, int status, const char *const *keys, size_t n, const char *after)
{
    iw_t *w = arg;
    w->done = true;
    w->status = status;
    if (status != 0 || !(w->keys = calloc(n ? n : 1, sizeof(*w->keys))))
        return;
    for (size_t i = 0; i < n; i++)
        if ((w->keys[w->n_keys] = strdup(keys[i])) != NULL)
            w->n_keys++;
    w->next_after = after ? strdup(after) : NULL;
}

/* Compare the object's chunks with the index's, chunk by chunk. */
static void ver_chunks(ver_t *v, const arc_obj_t *o, const tier_seg_info_t *info)
{
    for (size_t j = 0; j < info->n_chunks; j++) {
        const tier_seg_chunk_t *c = &info->chunks[j];
        iw_t w = {0};
        iw_run(v, &w,
               idx_lookup_offset(v->ic, o->topic, o->partition, c->first_offset, on_loc, &w));
        if (w.status != 0 || strcmp(w.key, o->key)) {
            problem(v, "%s: chunk %zu (offset %" PRId64 ") has no index row: %s", o->key, j,
                    c->first_offset, w.status ? st_strerror(w.status) : w.key);
            return;
        }
        const idx_chunk_t *x = &w.chunk;
        if (x->first_offset != c->first_offset || x->last_offset != c->last_offset ||
            x->obj_pos != (int64_t)c->obj_pos || x->obj_len != (int64_t)c->obj_len ||
            x->raw_len != (int64_t)c->raw_len || x->checksum != c->crc32c)
            problem(v,
                    "%s: chunk %zu differs from its index row: index offsets %" PRId64 "-%" PRId64
                    " bytes %" PRId64 "+%" PRId64 " raw %" PRId64 " crc32c %08x, object offsets "
                    "%" PRId64 "-%" PRId64 " bytes %" PRIu64 "+%u raw %u crc32c %08x",
                    o->key, j, x->first_offset, x->last_offset, x->obj_pos, x->obj_len, x->raw_len,
                    x->checksum, c->first_offset, c->last_offset, c->obj_pos, c->obj_len,
                    c->raw_len, c->crc32c);
    }
}

/* The object's index row: present; when the object was read (info not NULL), with the
 * same size, CRC-32C and offsets; when it also decoded (is_ok), with the same chunks. */
static void ver_index_row(ver_t *v, const arc_obj_t *o, const tier_seg_info_t *info, bool is_ok)
{
    iw_t w = {0};
    iw_run(v, &w, idx_list_segments(v->ic, o->topic, o->partition, o->base, 1, on_segs, &w));
    if (w.status != 0) {
        problem(v, "%s: cannot read the index: %s", o->key, st_strerror(w.status));
        return;
    }
    if (!w.found || w.seg.base_offset != o->base || strcmp(w.key, o->key)) {
        v->orphans++;
        problem(v, "%s: orphan: no index row for this object", o->key);
        return;
    }
    v->rows++;
    if (!info)
        return;
    if (w.seg.size != (int64_t)info->obj_size || w.seg.checksum != info->obj_crc32c)
        problem(v,
                "%s: differs from its index row: index size %" PRId64 " crc32c %08x, object "
                "size %" PRIu64 " crc32c %08x",
                o->key, w.seg.size, w.seg.checksum, info->obj_size, info->obj_crc32c);
    if (w.seg.last_offset != o->last)
        problem(v, "%s: its index row ends at offset %" PRId64 ", the key at %" PRId64, o->key,
                w.seg.last_offset, o->last);
    if (is_ok)
        ver_chunks(v, o, info);
}

/* Check one object: whole-object SHA-256 (obj_get), seek table, frames, batches, offsets
 * against its key, then its index row. */
static void ver_object(ver_t *v, const arc_obj_t *o)
{
    uint8_t *obj = NULL;
    size_t len = 0;
    char why[512];
    v->objects++;
    if (arc_get(v->a, o->key, 0, 0, &obj, &len, why, sizeof(why)) != 0) {
        problem(v, "%s: cannot read: %s", o->key, why);
        if (v->idx)
            ver_index_row(v, o, NULL, false);
        return;
    }
    v->bytes += (int64_t)len;
    tier_seg_table_t t;
    int rc = tier_seg_table_parse(obj, len, len, &t);
    tier_seg_table_fini(&t);
    tier_seg_info_t info;
    if (rc != 0) {
        memset(&info, 0, sizeof(info));
        problem(v, "%s: the seek table does not parse: %s", o->key, st_strerror(rc));
    } else {
        v->next = -1;
        v->why[0] = '\0';
        rc = tier_seg_object_describe(obj, len, ver_frame, v, &info);
        if (rc != 0)
            problem(v, "%s: frame %zu: %s", o->key, info.n_chunks,
                    v->why[0] ? v->why : st_strerror(rc));
        else if (info.base_offset != o->base || info.last_offset != o->last)
            problem(v,
                    "%s: holds offsets %" PRId64 "-%" PRId64 ", its key names %" PRId64 "-%" PRId64,
                    o->key, info.base_offset, info.last_offset, o->base, o->last);
    }
    info.obj_size = len;
    info.obj_crc32c = st_crc32c(0, obj, len);
    if (len != o->size)
        problem(v, "%s: listed with %" PRIu64 " bytes, read %zu", o->key, o->size, len);
    free(obj);
    if (v->idx)
        ver_index_row(v, o, &info, rc == 0);
    tier_seg_info_fini(&info);
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Index rows whose object is not in the archive. */
static void ver_missing(ver_t *v, const arc_list_t *l)
{
    char **keys = malloc((l->n ? l->n : 1) * sizeof(*keys));
    if (!keys) {
        problem(v, "out of memory");
        return;
    }
    for (size_t i = 0; i < l->n; i++)
        keys[i] = l->v[i].key;
    if (l->n > 1)
        qsort(keys, l->n, sizeof(*keys), cmp_str);
    char *after = NULL;
    do {
        iw_t w = {0};
        iw_run(v, &w, idx_list_keys(v->ic, after, IDX_MAX_PAGE, on_keys, &w));
        free(after);
        after = w.next_after;
        if (w.status != 0)
            problem(v, "cannot list the index keys: %s", st_strerror(w.status));
        for (size_t i = 0; i < w.n_keys; i++) {
            if (!bsearch(&w.keys[i], keys, l->n, sizeof(*keys), cmp_str)) {
                v->missing++;
                problem(v, "%s: indexed but not in the archive", w.keys[i]);
            }
            free(w.keys[i]);
        }
        free(w.keys);
    } while (after);
    free(keys);
}

/* Open the index to compare with: --index PATH, else the snapshot in the archive.
 * @return 0 (v->idx may stay NULL: no index), or CLI_EXIT_FAIL after printing. */
static int ver_open_index(ver_t *v, const char *path, const arc_list_t *l)
{
    char err[512] = "";
    if (!path && !l->has_index_snapshot)
        return 0;
    if (path) {
        if (access(path, R_OK) != 0)
            return cli_err("cannot read the index %s: %s", path, strerror(errno));
        v->index_name = path;
    } else {
        v->index_name = ARC_INDEX_KEY;
        uint8_t *data;
        size_t len;
        if (arc_get(v->a, ARC_INDEX_KEY, 0, 0, &data, &len, err, sizeof(err)) != 0) {
            problem(v, "cannot read the index snapshot %s: %s", ARC_INDEX_KEY, err);
            return 0;
        }
        const char *dir = getenv("TMPDIR");
        snprintf(v->tmp, sizeof(v->tmp), "%s/strata-index-XXXXXX", dir && *dir ? dir : "/tmp");
        int fd = mkstemp(v->tmp);
        bool ok = fd >= 0 && write(fd, data, len) == (ssize_t)len;
        if (fd >= 0 && close(fd) != 0)
            ok = false;
        free(data);
        if (!ok) {
            int e = errno;
            if (fd >= 0)
                unlink(v->tmp);
            v->tmp[0] = '\0';
            return cli_err("cannot write the index snapshot to a temporary file: %s", strerror(e));
        }
        path = v->tmp;
    }
    int rc = idx_open(path, &v->idx, err, sizeof(err));
    if (rc == 0 && (rc = idx_client_new(v->idx, &v->a->loop, &v->ic)) != 0)
        snprintf(err, sizeof(err), "%s", st_strerror(rc));
    if (rc != 0) {
        problem(v, "cannot open the index %s: %s", v->index_name, err[0] ? err : st_strerror(rc));
        idx_close(v->idx);
        v->idx = NULL;
    }
    return 0;
}

static void ver_close_index(ver_t *v)
{
    if (v->ic) {
        idx_client_close(v->ic, on_closed, NULL);
        uv_run(&v->a->loop, UV_RUN_DEFAULT);
    }
    idx_close(v->idx);
    if (v->tmp[0]) {
        static const char *const sfx[] = {"", "-wal", "-shm", "-journal", NULL};
        char p[PATH_MAX + 16];
        for (int i = 0; sfx[i]; i++) {
            snprintf(p, sizeof(p), "%s%s", v->tmp, sfx[i]);
            unlink(p);
        }
    }
}

/* Objects of a partition must follow each other without gaps or overlaps. */
static void ver_partition(ver_t *v, const arc_list_t *l, size_t first, size_t end)
{
    v->partitions++;
    for (size_t i = first + 1; i < end; i++) {
        const arc_obj_t *p = &l->v[i - 1], *o = &l->v[i];
        if (o->base <= p->last)
            problem(v, "%s: overlaps %s (offsets %" PRId64 "-%" PRId64 ")", o->key, p->key, o->base,
                    p->last);
        else if (o->base > p->last + 1)
            problem(v,
                    "%s/%d: offsets %" PRId64 "-%" PRId64 " are in no object (between %s and %s)",
                    o->topic, (int)o->partition, p->last + 1, o->base - 1, p->key, o->key);
    }
}

static void ver_report(const ver_t *v)
{
    if (cli_opts.is_json) {
        fputs("{\"archive\":", stdout);
        cli_json_cstr(stdout, v->a->url);
        printf(",\"objects\":%" PRId64 ",\"bytes\":%" PRId64 ",\"batches\":%" PRId64
               ",\"partitions\":%" PRId64 ",\"index\":",
               v->objects, v->bytes, v->batches, v->partitions);
        cli_json_cstr(stdout, v->idx ? v->index_name : NULL);
        if (v->idx)
            printf(",\"index_rows\":%" PRId64 ",\"orphans\":%" PRId64
                   ",\"missing_objects\":%" PRId64,
                   v->rows, v->orphans, v->missing);
        fputs(",\"problems\":[", stdout);
        for (size_t i = 0; i < v->n_problems; i++) {
            fputs(i ? "," : "", stdout);
            cli_json_cstr(stdout, v->problems[i]);
        }
        printf("],\"ok\":%s}\n", v->n_problems ? "false" : "true");
        return;
    }
    printf("archive %s: %" PRId64 " objects, %" PRId64 " bytes, %" PRId64 " batches in %" PRId64
           " partitions\n",
           v->a->url, v->objects, v->bytes, v->batches, v->partitions);
    if (v->idx)
        printf("index %s: %" PRId64 " rows matched, %" PRId64 " orphans, %" PRId64
               " rows without objects\n",
               v->index_name, v->rows, v->orphans, v->missing);
    else if (!v->index_name)
        puts("no index in the archive: checked objects only");
    if (v->n_problems)
        printf("FAILED: %zu problems\n", v->n_problems);
    else
        puts("OK");
}

static const char verify_help[] =
    "Usage: strata archive verify [--archive URL] [--index PATH]\n"
    "Check every object of an archive without a broker: its whole-object SHA-256, that its\n"
    "seek table parses, that every frame decodes with its zstd checksum, every batch's\n"
    "CRC-32C, that offsets are contiguous inside it and match its key, and that a\n"
    "partition's objects follow each other without gaps.\n"
    "With an index (--index, or the snapshot " ARC_INDEX_KEY " in the archive when there\n"
    "is one) every object must have its index row with the same size, CRC-32C and chunk byte\n"
    "ranges; objects without rows (orphans) and rows without objects are reported.\n"
    "Each problem prints one line on stderr; the exit code is 1 if there is any.\n"
    "Progress shows on stderr when it is a terminal.\n\n"
    "Flags:\n"
    "      --read-committed  skip the records of aborted transactions, as a read_committed\n"
    "                      consumer does, using the objects' txn tables (every object from\n"
    "                      the first one read to the archive's end is asked for its table);\n"
    "                      a transaction whose marker is not archived yet prints as committed\n"
    "                      (default: every record, as read_uncommitted)\n"
    "  -a, --archive URL   the archive (default as for 'strata archive ls')\n"
    "  -i, --index PATH    a broker's remote index (DATA_DIR/remote-index.db; stop the broker\n"
    "                      or copy the file first)\n"
    "      --format json   one JSON document with the counts and the problems\n\n"
    "Examples:\n"
    "  strata archive verify\n"
    "  strata archive verify --index ./strata-data/remote-index.db\n"
    "  strata archive verify --archive s3://strata/prod --format json\n";

static int cmd_verify(int argc, char **argv)
{
    const char *url = NULL, *index = NULL;
    int c;
    while ((c = cli_getopt(argc, argv, "a:i:h", arc_longs)) != -1) {
        if (c == 'a') {
            url = optarg;
        } else if (c == 'i') {
            index = optarg;
        } else if (c == 'h') {
            fputs(verify_help, stdout);
            return CLI_EXIT_OK;
        } else {
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_err("unexpected argument '%s'", argv[optind]);
    arc_t a;
    arc_list_t l;
    int rc = arc_open_list(&a, url, "", &l);
    if (rc)
        return rc;
    ver_t v = {.a = &a, .is_tty = isatty(STDERR_FILENO) == 1};
    rc = ver_open_index(&v, index, &l);
    for (size_t i = 0; !rc && i < l.n;) {
        size_t end = part_end(&l, i);
        ver_partition(&v, &l, i, end);
        for (; i < end; i++) {
            ver_object(&v, &l.v[i]);
            if (v.is_tty)
                fprintf(stderr, "\rverifying objects %zu/%zu", i + 1, l.n);
        }
    }
    if (v.is_tty)
        fputs("\r\033[K", stderr);
    if (!rc && v.ic)
        ver_missing(&v, &l);
    if (!rc)
        ver_report(&v);
    if (!rc && v.n_problems)
        rc = CLI_EXIT_FAIL;
    ver_close_index(&v);
    for (size_t i = 0; i < v.n_problems; i++)
        free(v.problems[i]);
    free(v.problems);
    arc_list_fini(&l);
    arc_close(&a);
    return rc;
}

/* ---- Family ---- */

static const char archive_help[] =
    "Usage: strata archive COMMAND [flags]\n"
    "Read an archive (s3://BUCKET/PREFIX or file://DIR) without a running broker: what it\n"
    "holds, its records, and whether every object is intact.\n\n"
    "Examples:\n"
    "  strata archive ls\n"
    "  strata archive cat orders 0 --from 0 -n 10\n"
    "  strata archive verify --archive s3://strata/prod\n";

static const cli_cmd_t archive_cmds[] = {
    {"ls", cmd_ls, "topics, partitions, offset and time ranges, objects and bytes"},
    {"cat", cmd_cat, "print archived records from an offset or a time"},
    {"verify", cmd_verify, "check every object (checksums, offsets) and the index"},
    {NULL, NULL, NULL}};

int cli_archive_main(int argc, char **argv)
{
    return cli_dispatch("archive", archive_cmds, argc - 1, argv + 1, archive_help);
}
