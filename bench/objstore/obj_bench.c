/* obj_bench.c - object store client throughput: N puts of SIZE bytes, then
 * sequential 1 MiB ranged gets over one of them, one request at a time, on
 * one libuv loop (as the uploader and a sequential replay would do).
 * Not a test: prints numbers for bench/objstore/run.sh, which runs curl
 * against the same server in the same run and prints ratios.
 *
 *   obj_bench URL [ENDPOINT] [SIZE_MIB] [N_PUTS] [GET_PASSES]
 *   URL: s3://bucket/prefix or file://dir; ENDPOINT: http://host:port (S3)
 * Credentials: AWS_* environment (run.sh sets the s3rver ones).
 * Output lines: "put_mib_s X", "get_range_mib_s Y". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tiering/obj.h"

typedef struct {
    bool is_done;
    int status;
    char err[256];
    size_t len;
} out_t;

static void done_cb(obj_req_t *req, obj_result_t *res, void *arg)
{
    out_t *o = arg;
    o->is_done = true;
    o->status = res->status;
    o->len = res->data_len;
    snprintf(o->err, sizeof o->err, "%s", res->errmsg);
}

static void wait_for(uv_loop_t *loop, out_t *o)
{
    while (!o->is_done)
        uv_run(loop, UV_RUN_ONCE);
    if (o->status) {
        fprintf(stderr, "obj_bench: %s\n", o->err);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: obj_bench URL [ENDPOINT] [SIZE_MIB] [N_PUTS] [GET_PASSES]\n");
        return 2;
    }
    size_t size = (size_t)(argc > 3 ? atoi(argv[3]) : 64) << 20;
    int n_puts = argc > 4 ? atoi(argv[4]) : 4;
    int passes = argc > 5 ? atoi(argv[5]) : 4;
    uv_loop_t loop;
    uv_loop_init(&loop);
    obj_config_t cfg = {.url = argv[1],
                        .endpoint = argc > 2 && argv[2][0] ? argv[2] : NULL,
                        .addressing = OBJ_ADDR_PATH,
                        .multipart_threshold_bytes = (uint64_t)size + 1}; /* one PUT, like curl */
    obj_store_t *st;
    char err[256];
    if (obj_store_new(&loop, &cfg, &st, err, sizeof err)) {
        fprintf(stderr, "obj_bench: %s\n", err);
        return 1;
    }
    uint8_t *buf = malloc(size);
    for (size_t i = 0; i < size; i++)
        buf[i] = (uint8_t)(i * 2654435761u >> 13);

    uint64_t t0 = uv_hrtime();
    for (int i = 0; i < n_puts; i++) {
        char key[64];
        snprintf(key, sizeof key, "bench/obj-%d", i);
        out_t o = {0};
        if (obj_put(st, key, buf, size, done_cb, &o, NULL))
            return 1;
        wait_for(&loop, &o);
    }
    double put_s = (double)(uv_hrtime() - t0) / 1e9;
    printf("put_mib_s %.1f\n", (double)n_puts * (double)size / (1 << 20) / put_s);

    size_t chunk = 1u << 20;
    t0 = uv_hrtime();
    size_t got = 0;
    for (int p = 0; p < passes; p++) {
        for (size_t off = 0; off < size; off += chunk) {
            out_t o = {0};
            if (obj_get_range(st, "bench/obj-0", off, chunk, done_cb, &o, NULL))
                return 1;
            wait_for(&loop, &o);
            got += o.len;
        }
    }
    double get_s = (double)(uv_hrtime() - t0) / 1e9;
    printf("get_range_mib_s %.1f\n", (double)got / (1 << 20) / get_s);
    fflush(stdout);
    obj_store_close(st, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(buf);
    return 0;
}
