/* st_crc32c.h - CRC-32C (Castagnoli), the checksum of Kafka record batches.
 * Data path: plog validates every produced batch and every batch read back
 * during recovery with it; tiering uses it for chunk checksums.
 * Uses the SSE4.2 crc32 instruction when the CPU has it, slicing-by-8 otherwise. */
#ifndef ST_CRC32C_H
#define ST_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/** Extend a CRC-32C. Start with crc = 0.  @thread any  @blocking no (CPU only) */
uint32_t st_crc32c(uint32_t crc, const void *data, size_t len);

/** The portable slicing-by-8 implementation (exposed for tests and benches). */
uint32_t st_crc32c_sw(uint32_t crc, const void *data, size_t len);

#endif
