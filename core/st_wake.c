/* st_wake.c - eventfd-based loop wake-ups (see st_wake.h).
 * Sender: the first send after the loop took the last one (pending 0 -> 1)
 * writes the eventfd; later ones see pending == 1 and return. Loop: drain the
 * eventfd, clear pending, then run the callback: a send that raced with the
 * clear either saw 1 (its work is visible to this callback, which runs after
 * the clear) or writes the eventfd again (one more, maybe empty, callback). */
#include "core/st_wake.h"

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void on_poll(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    st_wake_t *w = (st_wake_t *)p;
    uint64_t v;
    while (read(w->efd, &v, sizeof(v)) < 0 && errno == EINTR)
        ;
    atomic_store(&w->pending, 0);
    w->cb(w);
}

int st_wake_init(uv_loop_t *loop, st_wake_t *w, st_wake_cb cb)
{
    w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->efd < 0)
        return -errno;
    atomic_init(&w->pending, 0);
    atomic_init(&w->firing, 0);
    w->cb = cb;
    int rc = uv_poll_init(loop, &w->poll, w->efd);
    if (rc == 0)
        rc = uv_poll_start(&w->poll, UV_READABLE, on_poll);
    if (rc != 0) {
        close(w->efd);
        w->efd = -1;
        return rc;
    }
    return 0;
}

bool st_wake_claim(st_wake_t *w)
{
    if (atomic_load_explicit(&w->pending, memory_order_relaxed))
        return false;
    if (atomic_exchange(&w->pending, 1))
        return false;
    atomic_fetch_add(&w->firing, 1);
    return true;
}

void st_wake_fire(st_wake_t *w)
{
    uint64_t one = 1;
    while (write(w->efd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
    /* EAGAIN: the counter is at its maximum, a wake-up is pending anyway. */
    atomic_fetch_sub(&w->firing, 1);
}

void st_wake_send(st_wake_t *w)
{
    if (st_wake_claim(w))
        st_wake_fire(w);
}

static void on_closed(uv_handle_t *h)
{
    st_wake_t *w = (st_wake_t *)h;
    /* A send claimed before the close may not be written yet (its thread
     * left the owner's lock, then lost the CPU): wait, it is one syscall. */
    while (atomic_load(&w->firing) > 0)
        sched_yield();
    close(w->efd); /* only now: libuv watched it until the handle closed */
    w->efd = -1;
    if (w->closed_cb)
        w->closed_cb(h);
}

void st_wake_close(st_wake_t *w, uv_close_cb closed_cb)
{
    w->closed_cb = closed_cb;
    uv_close((uv_handle_t *)&w->poll, on_closed);
}
