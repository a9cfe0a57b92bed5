#include "CShims.h"

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
int cnn_mpi_success(void) { return MPI_SUCCESS; }

unsigned cnn_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
unsigned cnn_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
hid_t cnn_h5p_default(void) { return H5P_DEFAULT; }
hid_t cnn_h5s_all(void) { return H5S_ALL; }
hid_t cnn_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
hid_t cnn_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
hid_t cnn_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
hid_t cnn_h5t_native_int32(void) { return H5T_NATIVE_INT32; }
hid_t cnn_h5t_native_uint8(void) { return H5T_NATIVE_UINT8; }
hid_t cnn_h5t_c_s1(void) { return H5T_C_S1; }
hid_t cnn_h5p_file_access(void) { return H5P_FILE_ACCESS; }
hid_t cnn_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
hid_t cnn_h5p_link_create(void) { return H5P_LINK_CREATE; }
void cnn_h5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
