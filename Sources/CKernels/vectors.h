#ifndef CNN_KERNELS_VECTORS_H
#define CNN_KERNELS_VECTORS_H

#include <stdint.h>

/* Eight 32-bit lanes as vector types, one AVX2 register (two SSE registers in the baseline
   build): the compiler keeps them in registers, where arrays of eight were spilled.
   Comparisons give i8 masks (−1 or 0 per lane). 32-byte vectors may not be passed by value
   in the baseline build, so helpers take pointers and are always inlined. */
typedef float f8 __attribute__((vector_size(32)));
typedef int32_t i8 __attribute__((vector_size(32)));
#define INLINE static inline __attribute__((always_inline))

#endif
