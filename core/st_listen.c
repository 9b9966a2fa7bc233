/* st_listen.c - a listening TCP socket that pauses instead of spinning when
 * the process is out of file descriptors (see st_listen.h).
 * Data path: st_listen_open -> OPEN -> accept error EMFILE/ENFILE/ENOBUFS/
 * ENOMEM -> uv_close (PAUSING; this also ends libuv's accept loop) ->
 * PAUSED, retry timer -> socket + bind + listen again -> OPEN (or, still out
 * of descriptors, PAUSING again). st_listen_close from any state -> CLOSED. */
#include "core/st_listen.h"

#include "core/st_err.h"
#include "core/st_log.h"
#include "core/st_metrics.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum { ST_LISTEN_OPEN, ST_LISTEN_PAUSING, ST_LISTEN_PAUSED, ST_LISTEN_CLOSED };

static void on_uv_connection(uv_stream_t *server, int status);

static void handle_closed(st_listen_t *l)
{
    if (--l->n_open == 0 && l->is_closing) {
        l->state = ST_LISTEN_CLOSED;
        if (l->on_closed)
            l->on_closed(l);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void on_retry(uv_timer_t *t);

static void on_tcp_closed(uv_handle_t *h)
{
    st_listen_t *l = h->data;
    if (!l->is_closing) {
        l->state = ST_LISTEN_PAUSED;
        uv_timer_start(&l->retry, on_retry, ST_LISTEN_RETRY_MS, 0);
    }
    handle_closed(l);
}

/* tcp is initialized (counted in n_open): make its socket and listen. */
static int tcp_listen(st_listen_t *l, char *errbuf, size_t len)
{
    const struct sockaddr *sa = (const struct sockaddr *)&l->addr;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (l->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        bind(fd, sa,
             sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) !=
            0) {
        int err = -errno;
        snprintf(errbuf, len, "cannot listen on %s: %s", l->what, strerror(errno));
        if (fd >= 0)
            close(fd);
        return err;
    }
    int rc = uv_tcp_open(&l->tcp, fd);
    if (rc != 0)
        close(fd);
    else
        rc = uv_listen((uv_stream_t *)&l->tcp, l->backlog, on_uv_connection);
    if (rc != 0)
        snprintf(errbuf, len, "cannot listen on %s: %s", l->what, uv_strerror(rc));
    return rc;
}

static void tcp_init(st_listen_t *l)
{
    uv_tcp_init(l->retry.loop, &l->tcp);
    l->tcp.data = l;
    l->n_open++;
}

/* Out of descriptors: close the socket, open it again from the timer. */
static void pause_listening(st_listen_t *l, const char *why)
{
    st_metric_add(ST_M_LISTENER_PAUSED, 1);
    l->n_quiet++;
    uint64_t now = uv_now(l->retry.loop);
    if (l->log_ms == 0 || now - l->log_ms >= ST_LISTEN_LOG_MS) {
        struct rlimit rl = {0};
        (void)getrlimit(RLIMIT_NOFILE, &rl);
        ST_WARN("net",
                "%s: %s: not accepting connections for %d ms, open ones are still served (%lld "
                "pauses since the last such line; open file limit %llu: raise ulimit -n)",
                l->what, why, ST_LISTEN_RETRY_MS, (long long)l->n_quiet,
                (unsigned long long)rl.rlim_cur);
        l->log_ms = now;
        l->n_quiet = 0;
    }
    l->state = ST_LISTEN_PAUSING;
    uv_close((uv_handle_t *)&l->tcp, on_tcp_closed);
}

static void on_retry(uv_timer_t *t)
{
    st_listen_t *l = t->data;
    if (l->is_closing || l->state != ST_LISTEN_PAUSED)
        return;
    tcp_init(l);
    char err[256];
    int rc = tcp_listen(l, err, sizeof(err));
    if (rc == 0) {
        l->state = ST_LISTEN_OPEN;
        ST_INFO("net", "%s: accepting connections again", l->what);
        return;
    }
    pause_listening(l, err);
}

static void on_uv_connection(uv_stream_t *server, int status)
{
    st_listen_t *l = server->data;
    if (status == 0) {
        l->on_accept(l, server);
        return;
    }
    if (l->state != ST_LISTEN_OPEN)
        return;
    if (status == UV_EMFILE || status == UV_ENFILE || status == UV_ENOBUFS || status == UV_ENOMEM) {
        char why[128];
        snprintf(why, sizeof(why), "accept failed: %s", uv_strerror(status));
        pause_listening(l, why);
    }
    /* Other errors concern one connection (Linux reports a pending network
     * error of the new socket through accept): the next accept proceeds. */
}

int st_listen_addr(const char *host, int port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)out) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) != 0)
        return ST_E_CONFIG;
    return 0;
}

int st_listen_open(st_listen_t *l,
                   uv_loop_t *loop,
                   const struct sockaddr *sa,
                   bool reuseport,
                   int backlog,
                   const char *what,
                   st_listen_accept_cb on_accept,
                   void *data,
                   char *errbuf,
                   size_t errbuf_len)
{
    memset(l, 0, sizeof(*l));
    memcpy(&l->addr, sa,
           sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    l->reuseport = reuseport;
    l->backlog = backlog;
    snprintf(l->what, sizeof(l->what), "%s", what);
    l->on_accept = on_accept;
    l->data = data;
    uv_timer_init(loop, &l->retry);
    l->retry.data = l;
    l->n_open = 1;
    tcp_init(l);
    l->state = ST_LISTEN_OPEN;
    return tcp_listen(l, errbuf, errbuf_len);
}

void st_listen_close(st_listen_t *l, st_listen_closed_cb on_closed)
{
    if (l->is_closing)
        return;
    l->is_closing = true;
    l->on_closed = on_closed;
    uv_close((uv_handle_t *)&l->retry, on_timer_closed);
    if (l->state == ST_LISTEN_OPEN)
        uv_close((uv_handle_t *)&l->tcp, on_tcp_closed);
    /* PAUSING: its close callback is still due; PAUSED: already closed */
}

bool st_listen_is_open(const st_listen_t *l)
{
    return l->state == ST_LISTEN_OPEN && !l->is_closing;
}
