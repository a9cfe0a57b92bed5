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

/* Four float64 lanes, and the float64 halves of an f8: float32 data summed in float64. */
typedef double d4 __attribute__((vector_size(32)));
#define LOW(v) __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3), d4)
#define HIGH(v) __builtin_convertvector(__builtin_shufflevector(v, v, 4, 5, 6, 7), d4)

#endif
