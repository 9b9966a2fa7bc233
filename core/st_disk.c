/* st_disk.c - the data directory's free space, watched (see st_disk.h).
 * States: IDLE --timer--> STATFS (thread pool) --> IDLE; close during STATFS
 * waits for its callback. */
#include "core/st_disk.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/st_log.h"
#include "core/st_metrics.h"

struct st_disk {
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_fs_t req;
    bool busy, closing, is_low;
    char *dir; /* owned */
    int64_t low_bytes, low_percent;
    int64_t free_bytes, total_bytes; /* last values added to the gauges */
    uint64_t warned_ms;
};

static void on_timer_closed(uv_handle_t *h)
{
    st_disk_t *d = h->data;
    free(d->dir);
    free(d);
}

static void finish_close(st_disk_t *d)
{
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}

static void set_gauge(st_metric_t m, int64_t *last, int64_t v)
{
    st_metric_add(m, v - *last);
    *last = v;
}

static void on_statfs(uv_fs_t *req)
{
    st_disk_t *d = req->data;
    d->busy = false;
    if (req->result < 0) {
        ST_WARN("disk", "cannot read the free space of %s: %s", d->dir,
                uv_strerror((int)req->result));
    } else if (!d->closing) {
        const uv_statfs_t *s = req->ptr;
        int64_t total = (int64_t)(s->f_blocks * s->f_bsize);
        int64_t avail = (int64_t)(s->f_bavail * s->f_bsize);
        int64_t limit = d->low_bytes;
        if (d->low_percent > 0 && total / 100 * d->low_percent > limit)
            limit = total / 100 * d->low_percent;
        bool low = limit > 0 && avail < limit;
        set_gauge(ST_M_DISK_FREE_BYTES, &d->free_bytes, avail);
        set_gauge(ST_M_DISK_TOTAL_BYTES, &d->total_bytes, total);
        uint64_t now = uv_now(d->loop);
        if (low && (!d->is_low || now - d->warned_ms >= ST_DISK_REPEAT_MS)) {
            ST_WARN("disk",
                    "free disk space is low on %s: %" PRId64 " of %" PRId64 " bytes free "
                    "(alert below %" PRId64 "). Local retention keeps every record that is not "
                    "archived yet: check the object store (strata storage status) or add disk.",
                    d->dir, avail, total, limit);
            d->warned_ms = now;
        } else if (!low && d->is_low) {
            ST_INFO("disk",
                    "free disk space on %s is back above the alert threshold: %" PRId64
                    " bytes free",
                    d->dir, avail);
        }
        if (low != d->is_low)
            st_metric_add(ST_M_DISK_SPACE_LOW, low ? 1 : -1);
        d->is_low = low;
    }
    uv_fs_req_cleanup(req);
    if (d->closing)
        finish_close(d);
}

static void on_timer(uv_timer_t *t)
{
    st_disk_t *d = t->data;
    if (d->busy)
        return;
    d->req.data = d;
    if (uv_fs_statfs(d->loop, &d->req, d->dir, on_statfs) == 0)
        d->busy = true;
}

int st_disk_watch(uv_loop_t *loop, const st_disk_opts_t *opts, st_disk_t **out)
{
    st_disk_t *d = calloc(1, sizeof(*d));
    if (!d || !(d->dir = strdup(opts->dir))) {
        free(d);
        return ST_E_NOMEM;
    }
    d->loop = loop;
    d->low_bytes = opts->low_bytes;
    d->low_percent = opts->low_percent;
    int rc = uv_timer_init(loop, &d->timer);
    if (rc != 0) {
        free(d->dir);
        free(d);
        return rc;
    }
    d->timer.data = d;
    uint64_t period = opts->period_ms ? opts->period_ms : ST_DISK_PERIOD_MS;
    uv_timer_start(&d->timer, on_timer, 0, period);
    *out = d;
    return 0;
}

bool st_disk_is_low(const st_disk_t *d)
{
    return d && d->is_low;
}

void st_disk_close(st_disk_t *d)
{
    if (!d)
        return;
    d->closing = true;
    uv_timer_stop(&d->timer);
    if (!d->busy)
        finish_close(d);
}
