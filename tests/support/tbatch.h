/* tbatch.h - build valid Kafka record batches v2 for tests and benchmarks
 * (what a producer would send): records with keys, values and timestamps. */
#ifndef TBATCH_H
#define TBATCH_H

#include <stddef.h>
#include <stdint.h>

/** Build one uncompressed batch of n records. Record i has key "k<seed>-<i>"
 * and value_len bytes derived from (seed, i), timestamp base_ts + i.
 * @return malloc'd batch (caller frees), *len set. */
uint8_t *tbatch_build(int n, size_t value_len, uint64_t seed, int64_t base_ts, size_t *len);

/** Deterministic value byte j of record i of batch seed (what tbatch_build wrote). */
uint8_t tbatch_value_byte(uint64_t seed, int i, size_t j);

/** Write v as a zigzag varint (Kafka's varint/varlong) at p. @return bytes. */
size_t tbatch_put_varlong(uint8_t *p, int64_t v);

#endif
