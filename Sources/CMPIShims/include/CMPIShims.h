// MPI constants that mpi.h defines as macros over globals, which Swift cannot import.
// Each is a function returning the macro's value.
#ifndef CNN_TRAIN_CMPI_SHIMS_H
#define CNN_TRAIN_CMPI_SHIMS_H

#include <mpi.h>

MPI_Comm cnn_mpi_comm_world(void);
MPI_Datatype cnn_mpi_float(void);
MPI_Datatype cnn_mpi_double(void);
MPI_Datatype cnn_mpi_int64(void);
MPI_Datatype cnn_mpi_byte(void);
MPI_Op cnn_mpi_sum(void);
MPI_Op cnn_mpi_max(void);
MPI_Op cnn_mpi_min(void);
void *cnn_mpi_in_place(void);
MPI_Request cnn_mpi_request_null(void);
MPI_Status *cnn_mpi_status_ignore(void);
int cnn_mpi_thread_funneled(void);
int cnn_mpi_thread_multiple(void);
int cnn_mpi_success(void);
int cnn_mpi_comm_type_shared(void);
MPI_Info cnn_mpi_info_null(void);

// MARK: 16-bit gradient transport
// Buffers of MPI_UINT16_T whose elements are bfloat16 or IEEE half floats. The sum
// operations add two elements in float32 and round the result back to nearest (even);
// they are created on first use, which must come after MPI_Init.

#include <stdint.h>

MPI_Datatype cnn_mpi_uint16(void);
MPI_Op cnn_mpi_sum_bf16(void);
MPI_Op cnn_mpi_sum_fp16(void);

/// float32 -> bfloat16 or half, rounding to nearest even (NaN stays NaN), and back (exact).
void cnn_float_to_bf16(const float *from, uint16_t *to, long count);
void cnn_bf16_to_float(const uint16_t *from, float *to, long count);
void cnn_float_to_fp16(const float *from, uint16_t *to, long count);
void cnn_fp16_to_float(const uint16_t *from, float *to, long count);

#endif
