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

#endif
