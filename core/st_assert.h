/* st_assert.h - invariant checks.
 * ST_ASSERT: our own invariants, debug builds only.
 * ST_VERIFY: always on; aborts where continuing would corrupt persisted data.
 * ST_ALWAYS/ST_NEVER: defensive branches; assert in debug, handled in release.
 * Never assert on data from the network, disk, object store or config. */
#ifndef ST_ASSERT_H
#define ST_ASSERT_H

#include <stdio.h>
#include <stdlib.h>

#define ST_VERIFY(x)                                                                               \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "FATAL %s:%d: verify failed: %s\n", __FILE__, __LINE__, #x);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#ifdef NDEBUG
#define ST_ASSERT(x) ((void)0)
#define ST_ALWAYS(x) (x)
#define ST_NEVER(x)  (x)
#else
#define ST_ASSERT(x) ST_VERIFY(x)
#define ST_ALWAYS(x) ((x) ? 1 : (ST_VERIFY(0), 0))
#define ST_NEVER(x)  ((x) ? (ST_VERIFY(0), 1) : 0)
#endif

#endif
