/* kp_corpus_gen.c - writes the seed corpus of kp_decode_fuzz (tests/fuzz/corpus/kp/).
 * Data path: none. For each generated message, at its lowest, first flexible and highest
 * version, fills a struct with non-default values (tests/unit/kp_fill.c), encodes it and
 * writes "int16 api_key, int16 version, body" to DIR/<Name>-v<version>.
 * Usage: kp_corpus_gen DIR */
#include <stdio.h>
#include <stdlib.h>

#include "kafka/kp.h"
#include "tests/unit/kp_fill.h"

static int write_seed(const char *dir, const kp_msg_desc_t *d, int16_t key, int16_t v)
{
    kp_arena_t a;
    kp_arena_init(&a, 16u << 20);
    void *m = calloc(1, d->struct_size);
    kp_writer_t w;
    kp_writer_init(&w, 0);
    kp_write_i16(&w, key);
    kp_write_i16(&w, v);
    d->init(m);
    kp_fill_msg(d, m, v, &a, 0);
    int rc = d->encode(&w, v, m);
    if (rc == 0) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s-v%d", dir, d->name, v);
        FILE *f = fopen(path, "wb");
        if (f == NULL || fwrite(w.buf, 1, w.len, f) != w.len || fclose(f) != 0) {
            perror(path);
            rc = -1;
        }
    }
    kp_writer_fini(&w);
    free(m);
    kp_arena_fini(&a);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: kp_corpus_gen DIR\n");
        return 2;
    }
    int16_t keyless = 0;
    for (size_t i = 0; i < kp_n_msg_descs; i++) {
        const kp_msg_desc_t *d = &kp_msg_descs[i];
        int16_t key = d->api_key >= 0 ? d->api_key : --keyless;
        int16_t vs[3] = {d->min_version, d->flexible_min_version, d->max_version};
        for (int k = 0; k < 3; k++) {
            if (vs[k] < d->min_version || (k > 0 && (vs[k] == vs[k - 1] || vs[k] == vs[0])))
                continue;
            if (write_seed(argv[1], d, key, vs[k]) != 0)
                return 1;
        }
    }
    return 0;
}
