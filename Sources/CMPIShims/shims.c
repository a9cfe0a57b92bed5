#include "CMPIShims.h"

MPI_Comm cnn_mpi_comm_world(void) { return MPI_COMM_WORLD; }
MPI_Datatype cnn_mpi_float(void) { return MPI_FLOAT; }
MPI_Datatype cnn_mpi_double(void) { return MPI_DOUBLE; }
MPI_Datatype cnn_mpi_int64(void) { return MPI_INT64_T; }
MPI_Datatype cnn_mpi_byte(void) { return MPI_BYTE; }
MPI_Op cnn_mpi_sum(void) { return MPI_SUM; }
MPI_Op cnn_mpi_max(void) { return MPI_MAX; }
MPI_Op cnn_mpi_min(void) { return MPI_MIN; }
void *cnn_mpi_in_place(void) { return MPI_IN_PLACE; }
MPI_Request cnn_mpi_request_null(void) { return MPI_REQUEST_NULL; }
MPI_Status *cnn_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
int cnn_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
int cnn_mpi_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
int cnn_mpi_success(void) { return MPI_SUCCESS; }
int cnn_mpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
MPI_Info cnn_mpi_info_null(void) { return MPI_INFO_NULL; }
