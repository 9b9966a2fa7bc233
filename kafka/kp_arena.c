/* kp_arena.c - per-request bump allocator for decoded arrays.
 * Data path: kp_<msg>_decode() takes arrays from the request's arena -> the handler reads
 * them -> the connection calls kp_arena_reset() once the response is queued.
 * Invariants: 1. used_bytes never exceeds cap_bytes (a hostile count cannot take more);
 *             2. every pointer handed out is aligned for any type and zeroed. */
#include "kafka/kp.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#define KP_ARENA_CHUNK_BYTES 4096
#define KP_ARENA_ALIGN       ((size_t)alignof(max_align_t))

struct kp_arena_chunk {
    /* owned: the next (older) chunk */
    struct kp_arena_chunk *next;
    /* bytes of data[] already handed out */
    size_t used;
    /* bytes of data[] */
    size_t size;
    /* the memory handed out */
    alignas(max_align_t) unsigned char data[];
};

void kp_arena_init(kp_arena_t *a, size_t cap_bytes)
{
    a->chunks = NULL;
    a->used_bytes = 0;
    a->cap_bytes = cap_bytes;
}

void *kp_arena_alloc(kp_arena_t *a, size_t n)
{
    if (n == 0)
        n = 1;
    if (n > SIZE_MAX / 2)
        return NULL;
    size_t rounded = (n + KP_ARENA_ALIGN - 1) & ~(KP_ARENA_ALIGN - 1);
    struct kp_arena_chunk *c = a->chunks;
    if (c == NULL || c->size - c->used < rounded) {
        size_t size = rounded > KP_ARENA_CHUNK_BYTES ? rounded : KP_ARENA_CHUNK_BYTES;
        size_t total = sizeof(*c) + size;
        if (a->used_bytes + total > a->cap_bytes || a->used_bytes + total < a->used_bytes)
            return NULL;
        c = malloc(total);
        if (c == NULL)
            return NULL;
        c->size = size;
        c->used = 0;
        /* A big one-off allocation goes behind the current chunk so its free space stays
         * usable for the small allocations that follow. */
        if (a->chunks != NULL && rounded > KP_ARENA_CHUNK_BYTES) {
            c->next = a->chunks->next;
            a->chunks->next = c;
        } else {
            c->next = a->chunks;
            a->chunks = c;
        }
        a->used_bytes += total;
    }
    void *p = c->data + c->used;
    c->used += rounded;
    memset(p, 0, n);
    return p;
}

void *kp_arena_calloc(kp_arena_t *a, size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / 2 / size)
        return NULL;
    return kp_arena_alloc(a, count * size);
}

void kp_arena_reset(kp_arena_t *a)
{
    struct kp_arena_chunk *c = a->chunks;
    while (c != NULL) {
        struct kp_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->chunks = NULL;
    a->used_bytes = 0;
}

void kp_arena_fini(kp_arena_t *a)
{
    kp_arena_reset(a);
}
