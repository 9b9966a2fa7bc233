/* kp_decode_fuzz.c - libFuzzer target over every generated Kafka decoder.
 * Data path: stands in for a connection: input = int16 api_key, int16 version, then the
 * message body. Each decoder for that key (request and response) runs on the body; when one
 * succeeds, the struct is re-encoded (B), B is decoded again, and re-encoding that must give B
 * exactly. api_key -1 .. -4 select the schemas without a key (RequestHeader, ResponseHeader,
 * ConsumerProtocolAssignment, ConsumerProtocolSubscription, in kp_msg_descs order).
 * Invariants checked (abort on violation): no over-read (ASan), decode of an encoding succeeds
 * and consumes it, encode(decode(encode(x))) == encode(x). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka/kp.h"

#define FUZZ_ARENA_CAP (16u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const kp_msg_desc_t *d, int16_t version, const char *what)
{
    if (!ok) {
        fprintf(stderr, "kp_decode_fuzz: %s v%d: %s\n", d->name, version, what);
        abort();
    }
}

static void run_one(const kp_msg_desc_t *d, int16_t version, const uint8_t *body, size_t len)
{
    kp_arena_t a;
    kp_arena_init(&a, FUZZ_ARENA_CAP);
    void *m = malloc(d->struct_size);
    void *m2 = malloc(d->struct_size);
    if (m == NULL || m2 == NULL)
        abort();
    kp_reader_t r;
    kp_reader_init(&r, body, len);
    int rc = d->decode(&r, version, m, &a);
    check(rc == r.err, d, version, "return code differs from reader error");
    if (rc == 0) {
        kp_writer_t w1, w2;
        kp_writer_init(&w1, 0);
        kp_writer_init(&w2, 0);
        check(d->encode(&w1, version, m) == 0, d, version, "re-encode of decoded message failed");
        check(w1.len <= len, d, version, "encoding is longer than the input it came from");
        kp_reader_t r2;
        kp_reader_init(&r2, w1.buf, w1.len);
        check(d->decode(&r2, version, m2, &a) == 0, d, version, "decode of own encoding failed");
        check(kp_reader_remaining(&r2) == 0, d, version, "own encoding not fully consumed");
        check(d->encode(&w2, version, m2) == 0, d, version, "second encode failed");
        check(w1.len == w2.len && (w1.len == 0 || memcmp(w1.buf, w2.buf, w1.len) == 0), d, version,
              "encode(decode(encode(x))) differs from encode(x)");
        kp_writer_fini(&w1);
        kp_writer_fini(&w2);
    } else {
        check(r.err_field != NULL && r.err_offset <= len, d, version, "error without location");
    }
    free(m);
    free(m2);
    kp_arena_fini(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    int16_t api_key = (int16_t)((unsigned)data[0] << 8 | data[1]);
    int16_t version = (int16_t)((unsigned)data[2] << 8 | data[3]);
    const uint8_t *body = data + 4;
    size_t len = size - 4;
    int keyless = 0;
    for (size_t i = 0; i < kp_n_msg_descs; i++) {
        const kp_msg_desc_t *d = &kp_msg_descs[i];
        if (d->api_key < 0) {
            keyless++;
            if (api_key == -keyless)
                run_one(d, version, body, len);
        } else if (d->api_key == api_key) {
            run_one(d, version, body, len);
        }
    }
    return 0;
}
