/* st_listen.h - a listening TCP socket that survives file descriptor
 * exhaustion (the Kafka listeners of every shard, the admin listener).
 * Data path: the owner's loop -> libuv accepts -> on_accept (status 0) makes
 * the connection. When accept() fails with EMFILE/ENFILE (or ENOBUFS/ENOMEM),
 * libuv 1.44 calls back with the error and tries again at once, forever when
 * its spare descriptor was taken by another thread ("emfile trick" failed):
 * the loop would never serve anything else. So on such an error the socket
 * is closed (which ends libuv's accept loop; pending connections are reset,
 * connections already open keep being served) and opened again from a timer
 * ST_LISTEN_RETRY_MS later, with a log line at most every ST_LISTEN_LOG_MS
 * and the counter strata_listener_paused_total.
 * Invariants: 1. used on one loop only;
 *             2. after st_listen_open (even a failed one) the owner calls
 *                st_listen_close once; its callback runs once every handle
 *                of the listener is closed, whatever its state. */
#ifndef ST_LISTEN_H
#define ST_LISTEN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define ST_LISTEN_RETRY_MS 1000
#define ST_LISTEN_LOG_MS   10000

typedef struct st_listen st_listen_t;
typedef void (*st_listen_accept_cb)(st_listen_t *l, uv_stream_t *server);
typedef void (*st_listen_closed_cb)(st_listen_t *l);

struct st_listen {
    uv_tcp_t tcp;     /* the listening socket; closed while paused */
    uv_timer_t retry; /* opens it again after a pause */
    struct sockaddr_storage addr;
    bool reuseport; /* SO_REUSEPORT: one socket per shard on one port */
    int backlog;
    char what[96]; /* for log lines: "Kafka listener PLAINTEXT 127.0.0.1:9092" */
    st_listen_accept_cb on_accept;
    st_listen_closed_cb on_closed;
    void *data;      /* the owner's */
    int state;       /* ST_LISTEN_* in st_listen.c */
    int n_open;      /* handles not closed yet */
    bool is_closing; /* st_listen_close was called */
    uint64_t log_ms; /* last "not accepting" line */
    int64_t n_quiet; /* pauses since that line */
};

/** The socket address of host, a numeric IPv4 or IPv6 address (no name is
 * looked up, no [brackets]), and port: the one parser of listener addresses
 * (Kafka listeners, the admin listener, stratad's start-up port check).
 * @return 0, or ST_E_CONFIG when host is not an IP address. */
int st_listen_addr(const char *host, int port, struct sockaddr_storage *out);

/** Bind sa (SO_REUSEADDR, and SO_REUSEPORT when reuseport) and listen;
 * on_accept runs for each connection to accept with uv_accept(server, ...).
 * On error: a message in errbuf and a negative errno/uv code. */
int st_listen_open(st_listen_t *l,
                   uv_loop_t *loop,
                   const struct sockaddr *sa,
                   bool reuseport,
                   int backlog,
                   const char *what,
                   st_listen_accept_cb on_accept,
                   void *data,
                   char *errbuf,
                   size_t errbuf_len);

/** Stop listening; on_closed (may be NULL) runs on the loop once every
 * handle is closed, never from inside this call. */
void st_listen_close(st_listen_t *l, st_listen_closed_cb on_closed);

/** Is the socket listening now (false while paused)? */
bool st_listen_is_open(const st_listen_t *l);

#endif
