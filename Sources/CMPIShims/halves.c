#include "CMPIShims.h"
#include <string.h>

// bfloat16 is the upper half of a float32: widening is a shift, narrowing rounds the lower
// half away to nearest even.
static inline float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t float_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((bits >> 16) | 0x0040u);  // quiet NaN
    bits += 0x7FFFu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

// IEEE half through the compiler's _Float16 (round to nearest even; beyond 65504 is ±inf).
static inline float fp16_to_float(uint16_t h) {
    _Float16 x;
    memcpy(&x, &h, sizeof x);
    return (float)x;
}

static inline uint16_t float_to_fp16(float f) {
    _Float16 x = (_Float16)f;
    uint16_t h;
    memcpy(&h, &x, sizeof h);
    return h;
}

void cnn_float_to_bf16(const float *from, uint16_t *to, long count) { for (long i = 0; i < count; i++) to[i] = float_to_bf16(from[i]); }
void cnn_bf16_to_float(const uint16_t *from, float *to, long count) { for (long i = 0; i < count; i++) to[i] = bf16_to_float(from[i]); }
void cnn_float_to_fp16(const float *from, uint16_t *to, long count) { for (long i = 0; i < count; i++) to[i] = float_to_fp16(from[i]); }
void cnn_fp16_to_float(const uint16_t *from, float *to, long count) { for (long i = 0; i < count; i++) to[i] = fp16_to_float(from[i]); }

static void sum_bf16(void *in, void *inout, int *count, MPI_Datatype *type) {
    (void)type;
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < *count; i++) b[i] = float_to_bf16(bf16_to_float(a[i]) + bf16_to_float(b[i]));
}

static void sum_fp16(void *in, void *inout, int *count, MPI_Datatype *type) {
    (void)type;
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < *count; i++) b[i] = float_to_fp16(fp16_to_float(a[i]) + fp16_to_float(b[i]));
}

MPI_Datatype cnn_mpi_uint16(void) { return MPI_UINT16_T; }

MPI_Op cnn_mpi_sum_bf16(void) {
    static MPI_Op op = MPI_OP_NULL;
    if (op == MPI_OP_NULL) MPI_Op_create(sum_bf16, 1, &op);
    return op;
}

MPI_Op cnn_mpi_sum_fp16(void) {
    static MPI_Op op = MPI_OP_NULL;
    if (op == MPI_OP_NULL) MPI_Op_create(sum_fp16, 1, &op);
    return op;
}
