/* kh_conn.c - Kafka listener and connections: framing, dispatch, in-order
 * responses, cross-shard posts with back-pressure.
 * Data path: bytes arrive on the connection's shard -> frames are cut at
 * their int32 size (checked against socket.request.max.bytes before any
 * buffering) -> each frame becomes a kh_req_t appended to the connection's
 * queue -> a handler answers it, possibly later -> responses are written in
 * request order, as Kafka requires.
 *
 * Limits (kh_limits.c, broker-wide): max.connections and
 * max.connections.per.ip are checked at accept (a refused connection is
 * closed at once, one log line per 10 s); the queued.max.request.bytes pool
 * counts the requests read but not yet answered: each frame, from when it is
 * whole, with its decoded form (arena) and encoded response. The frame being
 * read is bounded per connection instead: the read buffer grows with the
 * bytes that arrived (never to a size a header merely announces; frees or
 * shrinks once framed) and the frame must be whole within
 * strata.request.read.timeout.ms. Answers waiting in libuv are bounded per
 * connection (KH_UNSENT_MAX), not in the pool: a client that does not read
 * stalls only itself.
 *
 * Reading: OPEN connections read while all of these hold (conn_pump):
 *   fewer than KH_MAX_INFLIGHT requests queued (checked per frame, inside one
 *   read; reading resumes below half of it), fewer than KH_UNSENT_MAX response
 *   bytes wait in libuv, no SASL login is being verified off the loop (frames
 *   pipelined behind it wait, framed after its answer: kh_sasl_holds_frames),
 *   and the pool is not full (mem_timer retries) - except
 *   that a frame begun while the pool had room is read to its end, so the pool
 *   always drains (Kafka reserves the announced size instead; here a header
 *   alone reserves nothing).
 *
 * Connection states:
 *   OPEN --(read error / EOF / protocol violation / idle / a frame not whole
 *          within strata.request.read.timeout.ms of its first byte)--> CLOSING
 *   CLOSING: the socket closes; requests still out on other shards finish,
 *            find conn == NULL and free themselves; the struct is freed when
 *            the close callback ran and no request refers to it.
 *
 * Shard shutdown (kh_shard_close): stop accepting, answer what was read
 * (KH_DRAIN_MS at most, then the connections close), then wait until every
 * request of the shard was freed, orphans included (their ops on other
 * shards come back, or complete locally as errors when that shard closed:
 * kh_post's `closed`), and only then report the kafka layer closed. So a
 * shard's queue, which closes after that, never refuses an answer to one of
 * its requests. The retry list outlives it all: kh_shard_free waits for it to
 * drain before freeing the shard.
 * Invariants: 1. at most KH_MAX_INFLIGHT requests per connection are queued;
 *                reading pauses at it (back-pressure on the client), and
 *                frames already read wait in the read buffer;
 *             2. a request is freed only after its response was handed to
 *                uv_write (or the connection is gone) and no op that refers
 *                to it is out (kh_req_op_out / kh_req_op_back). */
#include "core/st_assert.h"
#include "core/st_log.h"
#include "kafka/kh_int.h"
#include "kafka/kh_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#define KH_MAX_INFLIGHT   128
#define KH_ARENA_CAP      (64u << 20)
#define KH_DRAIN_MS       5000         /* shutdown: longest wait for in-flight requests */
#define KH_ORPHAN_MS      30000        /* then: longest wait for their ops on other shards */
#define KH_READ_CHUNK     65536u       /* free space offered to each read */
#define KH_FRAME_TAKE     (256u << 10) /* frames this large take the read buffer, no copy */
#define KH_UNSENT_MAX     (4u << 20)   /* response bytes waiting in libuv before reading pauses */
#define KH_MEM_RETRY_MS   10           /* how often a full pool is checked again */
#define KH_REFUSED_LOG_MS 10000        /* one "connection refused" line per shard per 10 s */

struct kh_conn {
    uv_tcp_t tcp;
    kh_shard_t *ks;
    kh_conn_t *prev, *next; /* the shard's list */
    uint64_t id;
    char peer[64];
    uint8_t *rbuf; /* owned: bytes not yet framed (NULL when none) */
    size_t rlen, rcap;
    uint64_t
        frame_t0_ms;    /* arrival of the first byte of the frame not yet whole in rbuf; 0: none */
    bool is_admitted;   /* that frame began while the pool had room: it may complete */
    bool is_framing;    /* conn_frame() is running: a nested call returns */
    bool is_paused_mem; /* not reading: the queued-request pool is full */
    bool is_counted;    /* admitted by kh_limits_conn_admit(): released at close */
    struct sockaddr_storage addr; /* the peer's address */
    kh_req_t *head, *tail;        /* requests in arrival order */
    int n_reqs;
    bool reading;
    bool draining; /* shutdown: answer what was read, then close */
    bool closing;
    bool closed;                 /* close callback ran */
    bool is_closing_after_write; /* a final response is being written: read nothing more */
    uint64_t last_active_ms;
    kh_sec_t sec;          /* listener, TLS session, principal */
    kh_fetch_conn_t fetch; /* kh_fetch's rotation and one-Fetch-at-a-time queue */
    kh_sasl_t *sasl;       /* owned: SASL state on a SASL_* listener, NULL on PLAINTEXT */
    uint64_t accepted_ms;
    bool tls_principal_taken; /* the client certificate's principal was looked at */
    /* Zero-copy send (see "Zero-copy" in kh_int.h): the response at the head of
     * the queue whose file ranges are being sent, or NULL. Other responses wait. */
    kh_req_t *zreq;
    struct kh_zpoll *zpoll; /* owned: watches the socket for writability while zreq waits */
    int n_zpoll_closing;    /* zpolls handed to uv_close: the struct waits for them */
};

/* A poll handle on a dup of a connection's socket: libuv allows one watcher
 * per descriptor, and the uv_tcp_t has the socket's. */
typedef struct kh_zpoll {
    uv_poll_t poll;
    int fd; /* owned */
    kh_conn_t *c;
} kh_zpoll_t;

typedef struct {
    uv_write_t w;
    uint8_t *buf; /* owned */
} wreq_t;

typedef struct {
    uv_shutdown_t sh;
    kh_conn_t *c;
} shutdown_t;

/* Every API we serve; ApiVersions advertises exactly these. */
static const struct {
    int16_t key;
    kh_handler_fn fn;
} k_handlers[] = {
    {KP_API_PRODUCE, kh_produce},
    {KP_API_FETCH, kh_fetch},
    {KP_API_LIST_OFFSETS, kh_list_offsets},
    {KP_API_METADATA, kh_metadata},
    {KP_API_API_VERSIONS, kh_api_versions},
    {KP_API_CREATE_TOPICS, kh_create_topics},
    {KP_API_DELETE_TOPICS, kh_delete_topics},
    {KP_API_INIT_PRODUCER_ID, kh_init_producer_id},
    {KP_API_OFFSET_FOR_LEADER_EPOCH, kh_offset_for_leader_epoch},
    {KP_API_DESCRIBE_CLUSTER, kh_describe_cluster},
    {KP_API_DESCRIBE_LOG_DIRS, kh_describe_log_dirs},
    {KP_API_DESCRIBE_TOPIC_PARTITIONS, kh_describe_topic_partitions},
    {KP_API_FIND_COORDINATOR, kh_find_coordinator},
    {KP_API_JOIN_GROUP, kh_join_group},
    {KP_API_SYNC_GROUP, kh_sync_group},
    {KP_API_HEARTBEAT, kh_heartbeat},
    {KP_API_LEAVE_GROUP, kh_leave_group},
    {KP_API_OFFSET_COMMIT, kh_offset_commit},
    {KP_API_OFFSET_FETCH, kh_offset_fetch},
    {KP_API_LIST_GROUPS, kh_list_groups},
    {KP_API_DESCRIBE_GROUPS, kh_describe_groups},
    {KP_API_DELETE_GROUPS, kh_delete_groups},
    {KP_API_CONSUMER_GROUP_HEARTBEAT, kh_consumer_group_heartbeat},
    {KP_API_CONSUMER_GROUP_DESCRIBE, kh_consumer_group_describe},
    {KP_API_OFFSET_DELETE, kh_offset_delete},
    {KP_API_CREATE_PARTITIONS, kh_create_partitions},
    {KP_API_DESCRIBE_CONFIGS, kh_describe_configs},
    {KP_API_ALTER_CONFIGS, kh_alter_configs},
    {KP_API_INCREMENTAL_ALTER_CONFIGS, kh_incremental_alter_configs},
    {KP_API_DELETE_RECORDS, kh_delete_records},
    {KP_API_DESCRIBE_ACLS, kh_describe_acls},
    {KP_API_CREATE_ACLS, kh_create_acls},
    {KP_API_DELETE_ACLS, kh_delete_acls},
    {KP_API_SASL_HANDSHAKE, kh_sasl_handshake},
    {KP_API_SASL_AUTHENTICATE, kh_sasl_authenticate},
    {KP_API_DESCRIBE_USER_SCRAM_CREDENTIALS, kh_describe_user_scram_credentials},
    {KP_API_ALTER_USER_SCRAM_CREDENTIALS, kh_alter_user_scram_credentials},
    {KP_API_ADD_PARTITIONS_TO_TXN, kh_txn_add_partitions},
    {KP_API_ADD_OFFSETS_TO_TXN, kh_txn_add_offsets},
    {KP_API_END_TXN, kh_txn_end},
    {KP_API_TXN_OFFSET_COMMIT, kh_txn_offset_commit},
    {KP_API_DESCRIBE_TRANSACTIONS, kh_txn_describe},
    {KP_API_LIST_TRANSACTIONS, kh_txn_list},
};

kh_handler_fn kh_handler_for(int16_t key)
{
    for (size_t i = 0; i < sizeof(k_handlers) / sizeof(k_handlers[0]); i++)
        if (k_handlers[i].key == key)
            return k_handlers[i].fn;
    return NULL;
}

kh_shard_t *kh_shard_of(rt_shard_t *sh)
{
    return rt_shard_data(sh);
}

kh_sec_t *kh_conn_sec(kh_conn_t *c)
{
    return &c->sec;
}

const char *kh_req_principal(const kh_req_t *req)
{
    return req->conn ? req->conn->sec.principal : ACL_ANONYMOUS;
}

const char *kh_req_peer(const kh_req_t *req)
{
    return req->conn ? req->conn->peer : "";
}

part_shard_t *kh_shard_parts(kh_shard_t *ks)
{
    return ks->parts_closed ? NULL : ks->ps;
}

static uint64_t now_ms(uv_loop_t *loop)
{
    return uv_now(loop);
}

/* ---- The queued-request pool (queued.max.request.bytes) ---- */

static void mem_add(kh_shard_t *ks, int64_t delta)
{
    kh_limits_mem_add(ks->ctx->limits, delta);
    st_metric_add(ST_M_KAFKA_QUEUED_REQUEST_BYTES, delta);
}

/* Count what req holds now: its frame, decoded structs and response. */
static void req_charge(kh_req_t *req)
{
    int64_t now = (int64_t)(req->frame_len + req->arena.used_bytes + req->out.cap);
    mem_add(req->ks, now - req->charged);
    req->charged = now;
}

/* ---- Requests ---- */

static void close_if_drained(kh_shard_t *ks);

static void req_free(kh_req_t *req)
{
    kh_shard_t *ks = req->ks;
    if (ks->dispatching == req)
        ks->dispatching = NULL;
    mem_add(ks, -req->charged);
    if (req->state_free)
        req->state_free(req);
    kp_writer_fini(&req->out);
    kp_arena_fini(&req->arena);
    free(req->frame);
    free(req);
    if (--ks->n_reqs_live == 0)
        close_if_drained(ks); /* shutdown may have waited for this one */
}

/* A finished request leaves its connection (written, or nobody to answer):
 * freed now, or by its last op back when some are still out. */
static void req_drop(kh_req_t *req)
{
    req->conn = NULL;
    req->next = NULL;
    if (req->pending > 0) {
        req->is_dropped = true;
        return;
    }
    req_free(req);
}

void kh_req_op_out(kh_req_t *req)
{
    ST_ASSERT(!req->is_dropped);
    req->pending++;
}

bool kh_req_op_back(kh_req_t *req)
{
    ST_ASSERT(req->pending > 0);
    if (--req->pending > 0)
        return false;
    if (!req->done)
        return true;
    if (req->is_dropped)
        req_free(req);
    return false;
}

static void conn_maybe_free(kh_conn_t *c);
static void conn_close(kh_conn_t *c, const char *why);
static void conn_pump(kh_conn_t *c);

static void on_shutdown(uv_shutdown_t *req, int status)
{
    shutdown_t *sd = (shutdown_t *)req;
    (void)status;
    kh_conn_t *c = sd->c;
    free(sd);
    conn_close(c, "final response written");
    conn_maybe_free(c);
}

/* The response just queued is the connection's last (failed authentication):
 * read nothing more, and close once libuv has written it. */
static void close_after_write(kh_conn_t *c)
{
    c->is_closing_after_write = true;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    shutdown_t *sd = malloc(sizeof(*sd));
    if (!sd || uv_shutdown(&sd->sh, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(sd);
        conn_close(c, "final response written");
        return;
    }
    sd->c = c;
    c->n_reqs++; /* keeps the struct alive until on_shutdown */
}

static void flush(kh_conn_t *c);

static void on_written(uv_write_t *w, int status)
{
    wreq_t *wr = (wreq_t *)w;
    kh_conn_t *c = w->handle->data; /* valid: write callbacks run before the close callback */
    (void)status;                   /* a failed write shows up as a read error / EOF */
    free(wr->buf);
    free(wr);
    if (!c->closing && c->zreq)
        flush(c); /* a zero-copy response waits for libuv's queue to drain */
    else if (!c->closing && !c->reading)
        conn_pump(c); /* reading may have paused for unsent responses */
}

/* Hand buf (owned) to the socket. @return false when the connection closed. */
static bool conn_send(kh_conn_t *c, uint8_t *buf, size_t len)
{
    wreq_t *wr = malloc(sizeof(*wr));
    if (!wr) {
        free(buf);
        conn_close(c, "out of memory");
        return false;
    }
    wr->buf = buf;
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(wr->buf);
        free(wr);
        conn_close(c, "write failed");
        return false;
    }
    return true;
}

/* ---- Zero-copy responses (Fetch records sent from segment files) ---- */

#define KH_SENDFILE_CHUNK (1u << 30) /* bytes per sendfile call at most */

static void on_zpoll_closed(uv_handle_t *h)
{
    kh_zpoll_t *zp = (kh_zpoll_t *)h;
    kh_conn_t *c = zp->c;
    close(zp->fd);
    free(zp);
    c->n_zpoll_closing--;
    conn_maybe_free(c);
}

/* The response was sent (or the connection closes): release the poll and its descriptor. */
static void zpoll_close(kh_conn_t *c)
{
    if (!c->zpoll)
        return;
    uv_close((uv_handle_t *)&c->zpoll->poll, on_zpoll_closed);
    c->zpoll = NULL;
    c->n_zpoll_closing++;
}

/* The socket is writable again. The poll stays armed until the response is
 * sent (zpoll_close) or waits for libuv's queue (zpoll_pause): a bounded send
 * buffer (socket.send.buffer.bytes) fills ~30 times per 32 MiB response, and
 * stopping and starting the watch at each cost 2-3 epoll_ctl calls. */
static void on_zpoll(uv_poll_t *p, int status, int events)
{
    kh_conn_t *c = ((kh_zpoll_t *)p)->c;
    (void)status; /* an error shows up in the next send */
    (void)events;
    if (c->closing)
        uv_poll_stop(p);
    else
        flush(c);
}

/* c->zreq waits for something other than the socket: stop watching it (a
 * level-triggered watch of a writable socket would fire on every loop turn). */
static void zpoll_pause(kh_conn_t *c)
{
    if (c->zpoll)
        uv_poll_stop(&c->zpoll->poll);
}

/* The socket is full: flush again once it is writable. */
static bool zpoll_start(kh_conn_t *c)
{
    if (c->zpoll && uv_is_active((uv_handle_t *)&c->zpoll->poll))
        return true; /* still armed since the last time it was full */
    if (!c->zpoll) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
            return false;
        kh_zpoll_t *zp = malloc(sizeof(*zp));
        int zfd = zp ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
        if (zfd < 0 || uv_poll_init(c->tcp.loop, &zp->poll, zfd) != 0) {
            if (zfd >= 0)
                close(zfd);
            free(zp);
            return false;
        }
        zp->fd = zfd;
        zp->c = c;
        c->zpoll = zp;
    }
    return uv_poll_start(&c->zpoll->poll, UV_WRITABLE, on_zpoll) == 0;
}

/* Bytes of c's zero-copy response not yet handed to the kernel. */
static size_t zsend_left(const kh_conn_t *c)
{
    const kh_req_t *r = c->zreq;
    return r ? r->out.len + (size_t)r->out.ext_bytes - r->zs_sent : 0;
}

/* No poll for the full socket (out of descriptors or memory): hand the rest
 * of c->zreq to libuv as one buffer, its file ranges read into it (from the
 * page cache: they were checked when read). @return false when the
 * connection closed. */
static bool zsend_copy_rest(kh_conn_t *c)
{
    kh_req_t *req = c->zreq;
    const kp_writer_t *w = &req->out;
    size_t n = zsend_left(c), out = req->zs_out;
    uint8_t *buf = malloc(n > 0 ? n : 1), *p = buf;
    if (!buf) {
        conn_close(c, "out of memory");
        return false;
    }
    for (int i = req->zs_i; i < w->n_ext; i++) {
        if (!w->ext[i].placed)
            continue;
        memcpy(p, w->buf + out, w->ext[i].at - out);
        p += w->ext[i].at - out;
        out = w->ext[i].at;
        int64_t skip = i == req->zs_i ? req->zs_off : 0;
        if (w->ext[i].is_mem) {
            memcpy(p, w->ext[i].token + skip, (size_t)(w->ext[i].len - skip));
            p += w->ext[i].len - skip;
            continue;
        }
        plog_slice_t rest = *(const plog_slice_t *)w->ext[i].token;
        rest.pos += skip;
        rest.len -= skip;
        if (plog_slice_pread(&rest, p) != 0) {
            free(buf);
            conn_close(c, "segment read failed");
            return false;
        }
        p += rest.len;
    }
    memcpy(p, w->buf + out, w->len - out);
    req->zs_sent += n;
    return conn_send(c, buf, n);
}

/* n more bytes of req's current ext value (len bytes) went out. */
static void zsend_advance(kh_req_t *req, ssize_t n, int64_t len)
{
    req->zs_sent += (size_t)n;
    if ((req->zs_off += n) == len) {
        req->zs_i++;
        req->zs_off = 0;
    }
}

/* Send c->zreq: its encoded bytes with its file ranges (kp_ext_t, tokens of
 * plog_slice_t) in between, the ranges with sendfile(2) straight from the
 * segment files, and records in memory (is_mem) from their own buffers. It
 * starts once libuv's queue is empty (what was queued there goes first) and
 * goes on when the socket is writable again.
 * @return true when all of it was sent (or queued in libuv by
 * zsend_copy_rest); false when it waits (on_written or on_zpoll flush again)
 * or the connection closed (zreq was freed then). */
static bool zsend_step(kh_conn_t *c)
{
    kh_req_t *req = c->zreq;
    kp_writer_t *w = &req->out;
    uv_os_fd_t fd;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > 0) {
        zpoll_pause(c); /* on_written flushes again */
        return false;
    }
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) {
        conn_close(c, "write failed");
        return false;
    }
    for (;;) {
        while (req->zs_i < w->n_ext && !w->ext[req->zs_i].placed)
            req->zs_i++;
        bool is_ext = req->zs_i < w->n_ext;
        size_t end = is_ext ? w->ext[req->zs_i].at : w->len;
        ssize_t n;
        if (req->zs_out < end) {
            /* MSG_MORE: the file range follows, send both in full segments. */
            n = send(fd, w->buf + req->zs_out, end - req->zs_out,
                     MSG_NOSIGNAL | (is_ext ? MSG_MORE : 0));
            if (n > 0) {
                req->zs_out += (size_t)n;
                req->zs_sent += (size_t)n;
                continue;
            }
        } else if (is_ext && w->ext[req->zs_i].is_mem) {
            const kp_ext_t *x = &w->ext[req->zs_i];
            size_t left = (size_t)(x->len - req->zs_off);
            /* MSG_MORE unless these are the response's last bytes. */
            bool more = req->zs_sent + left < w->len + (size_t)w->ext_bytes;
            n = send(fd, x->token + req->zs_off, left, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
            if (n > 0) {
                st_metric_add(ST_M_FETCH_MEMORY_BYTES, n);
                zsend_advance(req, n, x->len);
                continue;
            }
        } else if (is_ext) {
            const plog_slice_t *sl = (const plog_slice_t *)w->ext[req->zs_i].token;
            int64_t left = sl->len - req->zs_off;
            off_t off = (off_t)(sl->pos + req->zs_off);
            n = sendfile(fd, sl->fd, &off,
                         left < KH_SENDFILE_CHUNK ? (size_t)left : KH_SENDFILE_CHUNK);
            if (n > 0) {
                st_metric_add(ST_M_FETCH_SENDFILE_BYTES, n);
                zsend_advance(req, n, sl->len);
                continue;
            }
            if (n == 0) { /* cannot happen: the slice's bytes never change while held */
                ST_ERROR("kafka", "conn=%llu: segment file ended inside a fetched range",
                         (unsigned long long)c->id);
                conn_close(c, "segment file shorter than its slice");
                return false;
            }
        } else {
            return true;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return zpoll_start(c) ? false : zsend_copy_rest(c);
        conn_close(c, "write failed");
        return false;
    }
}

/* ---- TLS hooks (kafka/kh_tls.c does the work) ---- */

/* Send what the TLS session has to say (handshake, records, alerts). */
static bool tls_out(kh_conn_t *c)
{
    uint8_t *out;
    size_t n;
    if (kh_tls_conn_output(c->sec.tls, &out, &n) != 0) {
        conn_close(c, "out of memory");
        return false;
    }
    return !out || conn_send(c, out, n);
}

/* Encrypt a response (borrowed) in slices, so that the ciphertext of a big
 * fetch is not held twice. */
static void tls_send(kh_conn_t *c, const uint8_t *buf, size_t len);

/* Encrypt req's response with its ext values (over TLS: the bytes
 * themselves, Fetch records in memory) in their places, not copied first. */
static void tls_send_ext(kh_conn_t *c, const kp_writer_t *w)
{
    size_t done = 0;
    for (int i = 0; i < w->n_ext && !c->closing; i++) {
        if (!w->ext[i].placed)
            continue;
        tls_send(c, w->buf + done, w->ext[i].at - done);
        tls_send(c, w->ext[i].token, (size_t)w->ext[i].len);
        done = w->ext[i].at;
    }
    if (!c->closing)
        tls_send(c, w->buf + done, w->len - done);
}

static void tls_send(kh_conn_t *c, const uint8_t *buf, size_t len)
{
    for (size_t off = 0; off < len && !c->closing;) {
        size_t n = len - off < (256u << 10) ? len - off : (256u << 10);
        if (kh_tls_conn_write(c->sec.tls, buf + off, n) != 0) {
            conn_close(c, kh_tls_conn_error(c->sec.tls));
            return;
        }
        off += n;
        tls_out(c);
    }
}

/* Close a connection refused for what its client sent (not TLS, not Kafka,
 * a failed handshake): one INFO line per shard per second at most, so that
 * a scanner cannot flood the log. */
static void conn_refuse(kh_conn_t *c, const char *why)
{
    kh_shard_t *ks = c->ks;
    uint64_t now = now_ms(c->tcp.loop);
    if (ks->refused_log_ms == 0 || now - ks->refused_log_ms >= 1000) {
        ST_INFO("kafka", "closing conn=%llu peer=%s listener=%s (%s): %s%s",
                (unsigned long long)c->id, c->peer, c->sec.lis->name,
                kh_sec_proto_name(c->sec.lis->proto), why,
                ks->refused_quiet ? "; more refused connections were not logged" : "");
        ks->refused_log_ms = now;
        ks->refused_quiet = 0;
    } else {
        ks->refused_quiet++;
    }
    conn_close(c, why);
}

/* The n bytes just read at rbuf + rlen are ciphertext: replace them by the
 * plaintext they carry. @return plaintext bytes at rbuf + rlen (0: none
 * yet), or -1 when the connection was closed. */
static ssize_t tls_in(kh_conn_t *c, size_t n)
{
    kh_tls_conn_t *tc = c->sec.tls;
    ssize_t got = kh_tls_conn_read(tc, c->rbuf + c->rlen, n, &c->rbuf, c->rlen, &c->rcap);
    if (!tls_out(c))
        return -1;
    if (got == ST_E_CLOSED) { /* close_notify: as EOF */
        conn_close(c, "closed by peer");
        return -1;
    }
    if (got < 0) {
        conn_refuse(c, kh_tls_conn_error(tc));
        return -1;
    }
    if (!c->tls_principal_taken && kh_tls_conn_is_ready(tc)) {
        c->tls_principal_taken = true;
        const char *p = kh_tls_conn_principal(tc);
        if (p)
            snprintf(c->sec.principal, sizeof(c->sec.principal), "%s", p);
        char d[128];
        ST_DEBUG("kafka", "TLS conn=%llu peer=%s: %s principal=%s", (unsigned long long)c->id,
                 c->peer, kh_tls_conn_describe(tc, d, sizeof(d)), c->sec.principal);
    }
    return got;
}

/* Write every finished request at the head of the queue, in order. A
 * response with file ranges stays at the head until it was sent. */
static void flush(kh_conn_t *c)
{
    while (c->head && c->head->done) {
        kh_req_t *req = c->head;
        bool is_sent = false;
        if (!c->closing && req->out.len > 0 && kp_writer_ok(&req->out) && req->out.n_ext > 0 &&
            !c->sec.tls) {
            c->zreq = req;
            if (!zsend_step(c))
                break; /* flushed again when it can go on (or closed: req is gone) */
            c->zreq = NULL;
            zpoll_close(c);
            is_sent = true;
        }
        c->head = req->next;
        if (!c->head)
            c->tail = NULL;
        c->n_reqs--;
        if (!c->closing && req->out.len > 0 && kp_writer_ok(&req->out)) {
            if (is_sent) {
                /* sent above */
            } else if (c->sec.tls && req->out.n_ext > 0) {
                tls_send_ext(c, &req->out);
            } else if (c->sec.tls) {
                tls_send(c, req->out.buf, req->out.len);
            } else {
                conn_send(c, req->out.buf, req->out.len); /* hands the buffer over */
                req->out.buf = NULL;
                req->out.len = req->out.cap = 0;
            }
            if (!c->closing && req->close_after) {
                req_drop(req);
                close_after_write(c);
                return;
            }
        }
        req_drop(req);
    }
    conn_pump(c);
    if (c->draining && c->n_reqs == 0)
        conn_close(c, "broker shutting down");
    conn_maybe_free(c);
}

static void finish(kh_req_t *req)
{
    ST_ASSERT(!req->done);
    req->done = true;
    st_metric_observe_ns(ST_H_REQUEST_LATENCY, req->api ? req->api->api_key : -1,
                         uv_hrtime() - req->t0_ns);
    kh_conn_t *c = req->conn;
    if (!c) {
        req_drop(req); /* the connection is gone: nobody to answer */
        return;
    }
    flush(c);
}

void kh_respond(kh_req_t *req, const void *resp)
{
    if (!req->conn) { /* nobody to answer */
        finish(req);
        return;
    }
    kh_acl_respond(req, (void *)resp);
    kp_writer_t *w = &req->out;
    size_t size_at = kp_writer_reserve(w, 4);
    kp_response_header_t h;
    kp_response_header_init(&h);
    h.correlation_id = req->hdr.correlation_id;
    int16_t hv = kp_response_header_version(req->api->api_key, req->hdr.request_api_version);
    int rc = kp_response_header_encode(w, hv, &h);
    if (rc == 0)
        rc = req->api->response->encode(w, req->hdr.request_api_version, resp);
    if (rc != 0 || !kp_writer_ok(w)) {
        ST_ERROR("kafka", "cannot encode %s v%d response: %s field=%s", req->api->name,
                 req->hdr.request_api_version, st_strerror(rc ? rc : w->err),
                 w->err_field ? w->err_field : "?");
        kp_writer_reset(w);
        if (req->conn)
            conn_close(req->conn, "response encoding failed");
    } else if (w->len - 4 + (size_t)w->ext_bytes > INT32_MAX) {
        ST_ERROR("kafka", "%s v%d response too large", req->api->name,
                 req->hdr.request_api_version);
        kp_writer_reset(w);
        if (req->conn)
            conn_close(req->conn, "response too large");
    } else {
        kp_writer_patch_i32(w, size_at, (int32_t)(w->len - 4 + (size_t)w->ext_bytes));
    }
    finish(req);
}

void kh_no_response(kh_req_t *req)
{
    kp_writer_reset(&req->out);
    finish(req);
}

void kh_respond_raw(kh_req_t *req, const uint8_t *bytes, size_t len)
{
    kp_writer_t *w = &req->out;
    kp_write_i32(w, (int32_t)len);
    kp_write_raw(w, bytes, len);
    if (!kp_writer_ok(w)) {
        kp_writer_reset(w);
        if (req->conn)
            conn_close(req->conn, "out of memory");
    }
    finish(req);
}

kh_sasl_t *kh_conn_sasl(kh_conn_t *c)
{
    return c ? c->sasl : NULL;
}

void kh_conn_set_principal(kh_conn_t *c, const char *principal)
{
    snprintf(c->sec.principal, sizeof(c->sec.principal), "%s", principal);
}

uint64_t kh_conn_id(const kh_conn_t *c)
{
    return c->id;
}

const char *kh_conn_peer(const kh_conn_t *c)
{
    return c->peer;
}

void kh_fail_conn(kh_req_t *req, const char *why)
{
    if (req->conn)
        conn_close(req->conn, why);
    kh_no_response(req);
}

kh_fetch_conn_t *kh_conn_fetch(kh_conn_t *c)
{
    return &c->fetch;
}

size_t kh_conn_unsent_bytes(kh_conn_t *c)
{
    size_t n = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) + zsend_left(c);
    for (kh_req_t *r = c->head; r; r = r->next)
        if (r->done && r != c->zreq)
            n += r->out.len + (size_t)r->out.ext_bytes;
    return n;
}

void kh_fail_held(kh_req_t *req, const char *why)
{
    kh_fail_conn(req, why);
    (void)kh_req_op_back(req);
}

char *kh_cstr(kh_req_t *req, kp_str_t s)
{
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    char *p = kp_arena_alloc(&req->arena, n + 1);
    if (p && n)
        memcpy(p, s.ptr, n);
    return p;
}

bool *kh_str_dups(kh_req_t *req, const kp_str_t *first, int n, size_t stride)
{
    bool *dup = kh_array(req, n, sizeof(bool));
    uint32_t size = 16;
    while (size < 2u * (uint32_t)(n > 0 ? n : 0))
        size *= 2;
    int32_t *slot = kh_array(req, (int32_t)size, sizeof(int32_t));
    if (!dup || !slot)
        return NULL;
    memset(slot, 0xff, size * sizeof(int32_t)); /* -1: empty */
#define KH_STR_AT(i) (*(const kp_str_t *)((const char *)first + (size_t)(i)*stride))
    for (int i = 0; i < n; i++) {
        kp_str_t s = KH_STR_AT(i);
        uint32_t h = 2166136261u; /* FNV-1a; null and empty differ by the length mixed in */
        for (int32_t k = 0; k < s.len; k++)
            h = (h ^ (uint8_t)s.ptr[k]) * 16777619u;
        h = (h ^ (uint32_t)s.len) * 16777619u;
        uint32_t at = h & (size - 1);
        while (slot[at] >= 0 && !kp_str_eq(KH_STR_AT(slot[at]), s))
            at = (at + 1) & (size - 1);
        if (slot[at] >= 0)
            dup[i] = true;
        else
            slot[at] = i;
    }
#undef KH_STR_AT
    return dup;
}

void *kh_array(kh_req_t *req, int32_t n, size_t size)
{
    return kp_arena_calloc(&req->arena, n > 0 ? (size_t)n : 1, size);
}

const meta_topic_t *
kh_topic_find(kh_req_t *req, const meta_snap_t *snap, kp_str_t name, char **cname)
{
    const meta_topic_t *t = name.len >= 0 ? meta_snap_find(snap, name.ptr, (size_t)name.len) : NULL;
    if (cname)
        *cname = t ? kh_cstr(req, name) : NULL;
    return t;
}

/* ---- Framing and dispatch ---- */

static void dispatch(kh_conn_t *c, uint8_t *frame, size_t len)
{
    kh_req_t *req = calloc(1, sizeof(*req));
    if (!req) {
        free(frame);
        conn_close(c, "out of memory");
        return;
    }
    req->conn = c;
    req->t0_ns = uv_hrtime();
    req->ks = c->ks;
    c->ks->n_reqs_live++;
    req->lis = c->sec.lis;
    req->id = ++c->ks->next_req_id;
    req->frame = frame;
    req->frame_len = len;
    kp_arena_init(&req->arena, KH_ARENA_CAP);
    kp_writer_init(&req->out, 0);
    req_charge(req);
    /* Append first: even a rejected request keeps the queue's order. */
    if (c->tail)
        c->tail->next = req;
    else
        c->head = req;
    c->tail = req;
    c->n_reqs++;

    if (c->is_closing_after_write) {
        kh_no_response(req); /* read before the failed login's response went out */
        return;
    }
    if (c->sasl && kh_sasl_expects_raw(c->sasl)) {
        kh_sasl_raw_token(req); /* SaslHandshake v0: an unframed token, no header */
        return;
    }
    int16_t key = (int16_t)((frame[0] << 8) | frame[1]);
    int16_t ver = (int16_t)((frame[2] << 8) | frame[3]);
    kp_reader_t r;
    kp_reader_init(&r, frame, len);
    if (kp_request_header_decode(&r, kp_request_header_version(key, ver), &req->hdr, &req->arena) !=
        0) {
        kh_fail_conn(req, "malformed request header");
        return;
    }
    req->api = kp_api_get(key);
    kh_handler_fn fn = kh_handler_for(key);
    if (!req->api || !fn) {
        ST_DEBUG("kafka", "unsupported api_key=%d conn=%llu client=%.*s", key,
                 (unsigned long long)c->id, req->hdr.client_id.len > 0 ? req->hdr.client_id.len : 0,
                 req->hdr.client_id.ptr ? req->hdr.client_id.ptr : "");
        kh_fail_conn(req, "unsupported API key");
        return;
    }
    if (c->sasl && !kh_sasl_allows(c->sasl, key, now_ms(c->tcp.loop))) {
        ST_DEBUG("kafka", "%s before SASL authentication conn=%llu peer=%s", req->api->name,
                 (unsigned long long)c->id, c->peer);
        kh_fail_conn(req, "request before SASL authentication (or after the session expired)");
        return;
    }
    if (ver < req->api->min_version || ver > req->api->max_stable_version) {
        if (key == KP_API_API_VERSIONS) {
            kh_api_versions(req); /* answers UNSUPPORTED_VERSION in v0 format */
            return;
        }
        ST_DEBUG("kafka", "unsupported version api=%s v%d conn=%llu", req->api->name, ver,
                 (unsigned long long)c->id);
        kh_fail_conn(req, "unsupported API version");
        return;
    }
    req->msg = kp_arena_alloc(&req->arena, req->api->request->struct_size);
    if (!req->msg) {
        kh_fail_conn(req, "request too large for its arena");
        return;
    }
    int rc = req->api->request->decode(&r, ver, req->msg, &req->arena);
    if (rc != 0 || !kp_reader_ok(&r)) {
        ST_DEBUG("kafka", "malformed %s v%d request conn=%llu field=%s offset=%zu", req->api->name,
                 ver, (unsigned long long)c->id, r.err_field ? r.err_field : "?", r.err_offset);
        kh_fail_conn(req, "malformed request");
        return;
    }
    if (!kh_acl_check(req))
        return;
    kh_shard_t *ks = c->ks;
    ks->dispatching = req; /* cleared if req is freed meanwhile */
    fn(req);
    if (ks->dispatching == req)
        req_charge(req); /* what decoding and the handler took from the arena */
    ks->dispatching = NULL;
}

/* ---- Reading: buffer, framing, back-pressure ---- */

/* Resize the read buffer to cap bytes (0 frees it), keeping the pool's count. */
static bool rbuf_resize(kh_conn_t *c, size_t cap)
{
    uint8_t *n = NULL;
    if (cap > 0) {
        n = realloc(c->rbuf, cap);
        if (!n)
            return false;
    } else {
        free(c->rbuf);
    }
    c->rbuf = n;
    c->rcap = cap;
    return true;
}

static int32_t frame_size_at(const uint8_t *p)
{
    return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
                     p[3]);
}

/* Offer free space to the next read. The buffer grows with the bytes that
 * arrived (at most doubling), never beyond the frame being read: a bare
 * header announcing 100 MB costs one chunk until the bytes come. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    kh_conn_t *c = h->data;
    (void)suggested;
    size_t want = c->rlen + KH_READ_CHUNK;
    if (c->rcap < want) {
        size_t cap = c->rcap * 2 > want ? c->rcap * 2 : want;
        if (c->rlen >= 4) {
            int32_t size = frame_size_at(c->rbuf);
            size_t need = 4 + (size_t)(size > 0 ? size : 0);
            if (cap > need)
                cap = need > want ? need : want;
        }
        if (!rbuf_resize(c, cap)) {
            *buf = uv_buf_init(NULL, 0); /* on_read gets UV_ENOBUFS and closes */
            return;
        }
    }
    *buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

/* The frame of size bytes at *pos as an owned buffer. A large frame at the
 * start of the buffer takes the buffer itself (what follows it moves to a
 * new one), so its bytes are not held twice. NULL when out of memory. */
static uint8_t *frame_take(kh_conn_t *c, size_t *pos, size_t size)
{
    size_t need = 4 + size;
    if (*pos == 0 && size >= KH_FRAME_TAKE) {
        size_t rest = c->rlen - need;
        uint8_t *nb = NULL;
        if (rest > 0 && !(nb = malloc(rest)))
            return NULL;
        if (rest > 0)
            memcpy(nb, c->rbuf + need, rest);
        uint8_t *frame = c->rbuf;
        memmove(frame, frame + 4, size);
        uint8_t *shrunk = realloc(frame, size);
        c->rbuf = nb;
        c->rlen = c->rcap = rest;
        return shrunk ? shrunk : frame;
    }
    uint8_t *frame = malloc(size);
    if (frame) {
        memcpy(frame, c->rbuf + *pos + 4, size);
        *pos += need;
    }
    return frame;
}

/* Whether the frame whose size prefix is at p may be read on c; when not,
 * c is refused (closed, logged with a rate limit). */
static bool frame_size_ok(kh_conn_t *c, const uint8_t *p)
{
    int32_t size = frame_size_at(p);
    int32_t min = 8;
    int64_t max = c->ks->ctx->request_max_bytes;
    if (c->sasl && !kh_sasl_is_authenticated(c->sasl)) {
        max = max < KH_SASL_MAX_RECEIVE ? max : KH_SASL_MAX_RECEIVE;
        if (kh_sasl_expects_raw(c->sasl))
            min = 1;
    }
    if (size >= min && size <= max)
        return true;
    char why[200];
    if (p[0] == 0x16 && p[1] == 0x03 && !c->sec.tls)
        snprintf(why, sizeof(why), "a TLS handshake on a listener without TLS");
    else
        snprintf(why, sizeof(why),
                 "frame size %d outside [%d, %lld] (socket.request.max.bytes, or 512 KiB "
                 "before SASL authentication)",
                 size, min, (long long)max);
    conn_refuse(c, why);
    return false;
}

/* The first bytes of a frame arrived: start its read timeout. When the pool
 * has room, the frame is admitted: reading goes on until it is whole even if
 * the pool fills meanwhile (so partial frames cannot hold the pool forever);
 * otherwise reading pauses at once, with what arrived buffered. */
static void frame_begin(kh_conn_t *c)
{
    c->frame_t0_ms = now_ms(c->tcp.loop);
    c->is_admitted = !kh_limits_mem_full(c->ks->ctx->limits);
}

/* Cut the whole frames buffered in rbuf and dispatch them while the
 * connection may queue more requests (KH_MAX_INFLIGHT, checked per frame):
 * the rest stays buffered. Then an empty buffer is freed and a large one
 * shrinks back to what it holds. */
static void conn_frame(kh_conn_t *c)
{
    if (c->is_framing)
        return; /* a response flushed from inside dispatch() */
    c->is_framing = true;
    size_t pos = 0;
    bool cut = false;
    while (!c->closing && c->n_reqs < KH_MAX_INFLIGHT && c->rlen - pos >= 4 &&
           !(c->sasl && kh_sasl_holds_frames(c->sasl))) { /* a login verified off the loop */
        if (!frame_size_ok(c, c->rbuf + pos))
            break;
        int32_t size = frame_size_at(c->rbuf + pos);
        if (c->rlen - pos - 4 < (size_t)size)
            break; /* not whole yet */
        uint8_t *frame = frame_take(c, &pos, (size_t)size);
        if (!frame) {
            conn_close(c, "out of memory");
            break;
        }
        cut = true;
        dispatch(c, frame, (size_t)size);
    }
    c->is_framing = false;
    if (c->closing)
        return;
    if (pos > 0) {
        memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
    }
    if (c->rlen == 0)
        c->frame_t0_ms = 0; /* nothing partial: the read timeout does not run */
    else if (cut)           /* what is left began arriving after the frames before it */
        frame_begin(c);
    if (c->rlen == 0)
        (void)rbuf_resize(c, 0); /* idle connections hold no buffer */
    else if (c->rcap > 2 * KH_READ_CHUNK && c->rlen < c->rcap / 4)
        (void)rbuf_resize(c, c->rlen > KH_READ_CHUNK ? c->rlen : KH_READ_CHUNK);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    kh_conn_t *c = s->data;
    (void)buf;
    if (n < 0) {
        conn_close(c, n == UV_EOF ? "closed by peer" : uv_strerror((int)n));
        return;
    }
    if (n == 0)
        return;
    c->last_active_ms = now_ms(s->loop);
    if (c->sec.tls) {
        n = tls_in(c, (size_t)n); /* may grow rbuf */
        if (n < 0)
            return;
        /* A record not whole yet starts the clock like a partial frame
         * (during the handshake, strata.ssl.handshake.timeout.ms rules). */
        if (n == 0 && c->rlen == 0 && c->frame_t0_ms == 0 && kh_tls_conn_is_ready(c->sec.tls))
            frame_begin(c);
        if (n == 0)
            return;
    }
    if (c->frame_t0_ms == 0)
        frame_begin(c); /* the first byte of a frame */
    c->rlen += (size_t)n;
    conn_frame(c);
    conn_pump(c);
}

static void on_mem_retry(uv_timer_t *t);

static void mem_timer_arm(kh_shard_t *ks)
{
    if (!ks->timers_closed && !uv_is_active((uv_handle_t *)&ks->mem_timer))
        uv_timer_start(&ks->mem_timer, on_mem_retry, KH_MEM_RETRY_MS, KH_MEM_RETRY_MS);
}

/* Start or stop reading c's socket (see "Reading" at the top of the file).
 * Frames buffered before a pause are framed first when it ends. */
static void conn_pump(kh_conn_t *c)
{
    if (c->closing || c->draining || c->is_closing_after_write)
        return; /* reading stopped for good */
    if (!c->reading) {
        if (c->n_reqs >= KH_MAX_INFLIGHT / 2)
            return; /* hysteresis: wait until half of the queue is answered */
        if (c->frame_t0_ms && !c->is_paused_mem)
            c->frame_t0_ms = now_ms(c->tcp.loop); /* the pause was ours, not the client's */
        conn_frame(c);
        if (c->closing)
            return;
    }
    bool is_full = kh_limits_mem_full(c->ks->ctx->limits);
    bool is_unsent =
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) + zsend_left(c) > KH_UNSENT_MAX;
    bool is_held = c->sasl && kh_sasl_holds_frames(c->sasl); /* resumed by the login's answer */
    bool may = c->n_reqs < KH_MAX_INFLIGHT && !is_unsent && !is_held &&
               (!is_full || (c->frame_t0_ms && c->is_admitted));
    c->is_paused_mem = !may && is_full;
    if (c->is_paused_mem)
        mem_timer_arm(c->ks);
    if (may && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = true;
    } else if (!may && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* The pool had no room: resume the connections that paused for it. */
static void on_mem_retry(uv_timer_t *t)
{
    kh_shard_t *ks = t->data;
    if (kh_limits_mem_full(ks->ctx->limits))
        return;
    uv_timer_stop(t);
    for (kh_conn_t *c = ks->conns, *next; c; c = next) {
        next = c->next;
        if (c->is_paused_mem)
            conn_pump(c);
    }
}

/* ---- Connection lifecycle ---- */

static void conn_maybe_free(kh_conn_t *c)
{
    if (!c->closed || c->n_reqs > 0 || c->n_zpoll_closing > 0)
        return;
    kh_shard_t *ks = c->ks;
    kh_sasl_free(c->sasl);
    kh_tls_conn_free(c->sec.tls);
    (void)rbuf_resize(c, 0);
    free(c);
    if (ks->closing && ks->n_conns == 0 && ks->n_handles_open == 0 && ks->closed_cb) {
        kh_closed_cb cb = ks->closed_cb;
        ks->closed_cb = NULL;
        cb(ks->closed_arg);
    }
}

static void on_conn_closed(uv_handle_t *h)
{
    kh_conn_t *c = h->data;
    c->closed = true;
    conn_maybe_free(c);
}

static void conn_close(kh_conn_t *c, const char *why)
{
    if (c->closing)
        return;
    c->closing = true;
    ST_DEBUG("kafka", "closing conn=%llu peer=%s: %s", (unsigned long long)c->id, c->peer, why);
    kh_shard_t *ks = c->ks;
    if (c->prev)
        c->prev->next = c->next;
    else
        ks->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ks->n_conns--;
    st_metric_add(ST_M_KAFKA_CONNECTIONS, -1);
    if (c->is_counted)
        kh_limits_conn_release(ks->ctx->limits, (struct sockaddr *)&c->addr);
    c->is_counted = false;
    /* Requests still working elsewhere free themselves when they finish
     * (conn == NULL); finished ones and waiting fetches are dropped now. */
    for (kh_req_t *r = c->head, *next; r; r = next) {
        next = r->next;
        r->next = NULL;
        r->conn = NULL;
        if (r->done)
            req_drop(r);
        else
            kh_fetch_cancel(r);
    }
    c->head = c->tail = NULL;
    c->n_reqs = 0;
    c->zreq = NULL; /* dropped above: its segment refs were released */
    zpoll_close(c);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    close_if_drained(ks);
}

/* max.connections and max.connections.per.ip: false refuses c, with one
 * log line per shard per KH_REFUSED_LOG_MS at most. */
static bool conn_admit(kh_shard_t *ks, kh_conn_t *c)
{
    kh_admit_t a = kh_limits_conn_admit(ks->ctx->limits, (struct sockaddr *)&c->addr);
    if (a == KH_ADMIT_OK) {
        c->is_counted = true;
        return true;
    }
    st_metric_add(ST_M_KAFKA_CONNECTIONS_REFUSED, 1);
    ks->n_limit_refused++;
    uint64_t now = now_ms(c->tcp.loop);
    if (ks->limit_log_ms == 0 || now - ks->limit_log_ms >= KH_REFUSED_LOG_MS) {
        ST_WARN("kafka",
                "refused a connection from %s: %s (%lld refused by this shard since the last such "
                "line)",
                c->peer,
                a == KH_ADMIT_MAX_CONNS    ? "max.connections reached"
                : a == KH_ADMIT_MAX_PER_IP ? "max.connections.per.ip reached for this address"
                                           : "out of memory",
                (long long)ks->n_limit_refused);
        ks->limit_log_ms = now;
        ks->n_limit_refused = 0;
    }
    return false;
}

/* socket.send.buffer.bytes (as Kafka: -1, Strata's default, keeps the OS's
 * auto-tuned buffer). Bounded, a big Fetch response goes out in steps of the
 * buffer's size instead of one sendfile of up to 4 MiB per range: faster on a
 * loaded machine, slower on an idle one (bench/REPORT.md, "Multi-partition
 * Fetch send path"). A failure only leaves the default. */
static void conn_set_sndbuf(kh_conn_t *c, int32_t bytes)
{
    uv_os_fd_t fd;
    if (bytes > 0 && uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 &&
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)) != 0)
        ST_WARN("kafka", "conn=%llu: setsockopt(SO_SNDBUF, %d): %s", (unsigned long long)c->id,
                (int)bytes, strerror(errno));
}

/* A connection to accept on a listener (errors are st_listen.c's). */
static void on_connection(st_listen_t *sock, uv_stream_t *server)
{
    kh_lsock_t *ls = sock->data;
    kh_shard_t *ks = ls->ks;
    kh_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->ks = ks;
    c->sec.lis = ls->lis;
    snprintf(c->sec.principal, sizeof(c->sec.principal), "User:ANONYMOUS");
    c->id = ++ks->next_conn_id * 1024 + (uint64_t)rt_shard_id(ks->sh);
    conn_set_sndbuf(c, ks->ctx->socket_send_buffer);
    c->last_active_ms = c->accepted_ms = now_ms(server->loop);
    struct sockaddr_storage *sa = &c->addr;
    int len = sizeof(*sa);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)sa, &len) == 0) {
        char ip[48] = "?";
        if (sa->ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)sa, ip, sizeof(ip));
        else
            uv_ip6_name((struct sockaddr_in6 *)sa, ip, sizeof(ip));
        snprintf(c->peer, sizeof(c->peer), "%s:%d", ip,
                 ntohs(((struct sockaddr_in *)sa)->sin_port));
    }
    if (!conn_admit(ks, c)) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    if (kh_sec_proto_is_sasl(ls->lis->proto) && !(c->sasl = kh_sasl_new(ks->ctx))) {
        kh_limits_conn_release(ks->ctx->limits, (struct sockaddr *)&c->addr);
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    c->next = ks->conns;
    if (ks->conns)
        ks->conns->prev = c;
    ks->conns = c;
    ks->n_conns++;
    st_metric_add(ST_M_KAFKA_CONNECTIONS, 1);
    st_metric_add(ST_M_KAFKA_CONNECTIONS_ACCEPTED, 1);
    if (ls->lis->tls && !(c->sec.tls = kh_tls_conn_new(ls->lis->tls))) {
        conn_close(c, "out of memory");
        return;
    }
    conn_pump(c);
}

/* Every second: close idle connections (connections.max.idle.ms) and those
 * whose frame did not arrive whole within strata.request.read.timeout.ms of
 * its first byte (bytes that keep trickling in do not restart that clock). A
 * connection that does not read because of its own queue is not waiting for
 * the client; one paused by a full pool is (its buffer may be what fills it). */
static void on_idle_check(uv_timer_t *t)
{
    kh_shard_t *ks = t->data;
    int64_t idle_ms = ks->ctx->idle_ms, rto_ms = ks->ctx->request_read_timeout_ms;
    uint64_t now = now_ms(t->loop);
    for (kh_conn_t *c = ks->conns, *next; c; c = next) {
        next = c->next;
        if (rto_ms >= 0 && c->frame_t0_ms && (c->reading || c->is_paused_mem) &&
            now - c->frame_t0_ms > (uint64_t)rto_ms) {
            ST_INFO("kafka",
                    "closing conn=%llu peer=%s: request not received whole within %lld ms "
                    "(strata.request.read.timeout.ms; %zu bytes of it decoded)",
                    (unsigned long long)c->id, c->peer, (long long)rto_ms, c->rlen);
            conn_close(c, "request read timeout");
        } else if (idle_ms >= 0 && c->n_reqs == 0 && now - c->last_active_ms > (uint64_t)idle_ms) {
            conn_close(c, "idle longer than connections.max.idle.ms");
        } else if (c->sec.tls && !kh_tls_conn_is_ready(c->sec.tls) &&
                   now - c->accepted_ms > (uint64_t)ks->ctx->ssl_handshake_timeout_ms) {
            conn_refuse(c, "TLS handshake not finished within strata.ssl.handshake.timeout.ms");
        }
    }
}

/* ---- Cross-shard posts ---- */

static void on_retry_closed(uv_handle_t *h)
{
    kh_shard_t *ks = h->data;
    kh_idem_free_all(ks);
    kh_txn_part_free_all(ks);
    kh_fetch_free_watches(ks);
    free(ks);
}

/* kh_shard_free was called and the retry list is empty: the last handle closes. */
static void retry_maybe_close(kh_shard_t *ks)
{
    if (!ks->is_freeing || ks->retry_head || ks->is_retry_closed)
        return;
    ks->is_retry_closed = true;
    uv_close((uv_handle_t *)&ks->retry_timer, on_retry_closed);
}

static void on_retry(uv_timer_t *t)
{
    kh_shard_t *ks = t->data;
    while (ks->retry_head) {
        kh_post_t *p = ks->retry_head;
        /* Read before posting: once posted, p belongs to the target, which may run the
         * message at once on its thread and post p again (ops post themselves back with
         * the same node) or free it. */
        kh_post_t *next = p->next;
        int rc = rt_post(ks->ctx->rt, p->to, p->fn, p->arg);
        if (rc == ST_E_AGAIN)
            return; /* still full: the timer fires again */
        ks->retry_head = next;
        if (!ks->retry_head)
            ks->retry_tail = NULL;
        if (rc == ST_E_CLOSED && p->closed)
            p->closed(ks->sh, p->arg); /* may post again: the loop reads the list anew */
        else if (rc != 0)
            ST_ERROR("kafka", "cannot post to shard %d: %s", p->to, st_strerror(rc));
    }
    uv_timer_stop(t);
    retry_maybe_close(ks);
}

void kh_post(kh_shard_t *ks, kh_post_t *p, int to, rt_fn fn, rt_fn closed, void *arg)
{
    p->to = to;
    p->fn = fn;
    p->closed = closed;
    p->arg = arg;
    p->next = NULL;
    /* Keep order behind anything already waiting. */
    int rc = ks->retry_head ? ST_E_AGAIN : rt_post(ks->ctx->rt, to, fn, arg);
    if (rc == 0)
        return;
    if (rc != ST_E_AGAIN && !(rc == ST_E_CLOSED && closed)) {
        ST_ERROR("kafka", "cannot post to shard %d: %s", to, st_strerror(rc));
        return;
    }
    /* A full queue, or a closed one: p->closed runs from the timer, not
     * within the caller (which may be iterating its own ops). */
    if (ks->retry_tail)
        ks->retry_tail->next = p;
    else
        ks->retry_head = p;
    ks->retry_tail = p;
    if (!uv_is_active((uv_handle_t *)&ks->retry_timer))
        uv_timer_start(&ks->retry_timer, on_retry, 1, 1);
}

int kh_owner(const kh_shard_t *ks, const char *topic, int32_t partition)
{
    return rt_shard_for(topic, partition, rt_shard_count(ks->ctx->rt));
}

/* ---- Shard start / stop ---- */

int kh_shard_new(rt_shard_t *sh,
                 const kh_ctx_t *ctx,
                 part_shard_t *ps,
                 kh_shard_t **out,
                 char *errbuf,
                 size_t errbuf_len)
{
    kh_shard_t *ks = calloc(1, sizeof(*ks));
    if (!ks)
        return ST_E_NOMEM;
    ks->sh = sh;
    ks->ctx = ctx;
    ks->ps = ps;
    uv_loop_t *loop = rt_shard_loop(sh);
    int rc = 0;
    ks->n_handles_open = 2; /* idle_timer, mem_timer; then one per listener (the retry
                             * timer outlives them: kh_shard_free) */
    for (int i = 0; i < ctx->n_listeners && rc == 0; i++) {
        const kh_listener_t *l = &ctx->listeners[i];
        struct sockaddr_storage sa;
        if (st_listen_addr(l->host, l->port, &sa) != 0) {
            snprintf(errbuf, errbuf_len, "listeners: '%s' is not an IP address", l->host);
            rc = ST_E_CONFIG;
            break;
        }
        kh_lsock_t *ls = &ks->lsocks[ks->n_lsocks++];
        ks->n_handles_open++;
        ls->ks = ks;
        ls->lis = l;
        char what[96];
        snprintf(what, sizeof(what), "Kafka listener %s %s:%d", l->name, l->host, l->port);
        rc = st_listen_open(&ls->sock, loop, (struct sockaddr *)&sa, true, 1024, what,
                            on_connection, ls, errbuf, errbuf_len);
    }
    uv_timer_init(loop, &ks->idle_timer);
    ks->idle_timer.data = ks;
    uv_timer_start(&ks->idle_timer, on_idle_check, 1000, 1000);
    uv_timer_init(loop, &ks->retry_timer);
    ks->retry_timer.data = ks;
    uv_timer_init(loop, &ks->mem_timer);
    ks->mem_timer.data = ks;
    kh_group_shard_start(ks);
    kh_txn_shard_start(ks);
    if (ps) /* a sync moved a high watermark: wake the long polls */
        plog_shard_on_hw(part_plog_shard(ps), kh_fetch_on_hw, ks);
    *out = ks; /* also on error: the caller closes it */
    return rc;
}

static void handle_closed(kh_shard_t *ks)
{
    ks->n_handles_open--;
    if (ks->n_handles_open == 0 && ks->n_conns == 0 && ks->closed_cb) {
        kh_closed_cb cb = ks->closed_cb;
        ks->closed_cb = NULL;
        cb(ks->closed_arg);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void on_lsock_closed(st_listen_t *sock)
{
    handle_closed(((kh_lsock_t *)sock->data)->ks);
}

/* Shutdown: the idle and pool timers close (and with the last handle the
 * kafka layer reports closed) once every connection is gone and every request
 * of the shard was freed. */
static void close_if_drained(kh_shard_t *ks)
{
    if (!ks->closing || ks->n_conns > 0 || ks->timers_closed)
        return;
    if ((ks->n_reqs_live > 0 || !kh_txn_shard_is_closed(ks)) && !ks->is_orphans_abandoned)
        return; /* orphans (and the transaction coordinator) wait for their ops: the drain
                 * timer bounds it */
    ks->timers_closed = true;
    uv_close((uv_handle_t *)&ks->idle_timer, on_handle_closed);
    uv_close((uv_handle_t *)&ks->mem_timer, on_handle_closed);
}

void kh_shard_drained(kh_shard_t *ks)
{
    close_if_drained(ks);
}

/* A request whose op never came back (a bug elsewhere) must not hang the
 * stop: give up on it. Its memory is not freed (an answer may still come
 * while this shard's queue is open), and what refuses to post it later logs. */
static void on_orphan_timeout(uv_timer_t *t)
{
    kh_shard_t *ks = t->data;
    ST_WARN("kafka",
            "stopping with %d requests whose ops did not come back within %d s (not freed)",
            ks->n_reqs_live, KH_ORPHAN_MS / 1000);
    ks->is_orphans_abandoned = true;
    close_if_drained(ks);
}

static void on_drain_timeout(uv_timer_t *t)
{
    kh_shard_t *ks = t->data;
    if (ks->n_conns > 0)
        ST_WARN("kafka", "closing %d connections with requests still in flight", ks->n_conns);
    for (kh_conn_t *c = ks->conns, *next; c; c = next) {
        next = c->next;
        conn_close(c, "shutdown drain timed out");
    }
    if (!ks->timers_closed) /* orphans still wait for ops on other shards */
        uv_timer_start(&ks->idle_timer, on_orphan_timeout, KH_ORPHAN_MS, 0);
}

void kh_shard_close(kh_shard_t *ks, kh_closed_cb cb, void *arg)
{
    ks->closing = true;
    ks->closed_cb = cb;
    ks->closed_arg = arg;
    kh_group_shard_close(ks);
    kh_txn_shard_close(ks);
    for (int i = 0; i < ks->n_lsocks; i++) /* stop accepting */
        st_listen_close(&ks->lsocks[i].sock, on_lsock_closed);
    kh_fetch_wake_all(ks); /* long polls answer now */
    /* Finish what was read: each connection closes when its queue is empty. */
    for (kh_conn_t *c = ks->conns, *next; c; c = next) {
        next = c->next;
        c->draining = true;
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = false;
        }
        if (c->n_reqs == 0)
            conn_close(c, "broker shutting down");
    }
    uv_timer_stop(&ks->idle_timer);
    uv_timer_start(&ks->idle_timer, on_drain_timeout, KH_DRAIN_MS, 0);
    close_if_drained(ks);
}

void kh_shard_set_tier(kh_shard_t *ks, struct tier_shard *ts)
{
    ks->tier = ts;
}

void kh_shard_free(kh_shard_t *ks)
{
    if (!ks)
        return;
    ks->is_freeing = true;
    if (!uv_is_active((uv_handle_t *)&ks->retry_timer) && ks->retry_head)
        uv_timer_start(&ks->retry_timer, on_retry, 1, 1);
    retry_maybe_close(ks); /* or on_retry, once the list is empty */
}

void kh_shard_parts_closing(kh_shard_t *ks)
{
    ks->parts_closed = true;
    if (ks->ps)
        plog_shard_on_hw(part_plog_shard(ks->ps), NULL, NULL);
}
