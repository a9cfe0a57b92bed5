// Constants that the MPI and HDF5 headers define as macros over globals or casts,
// which Swift cannot import. Each is a function returning the macro's value.
#ifndef CNN_TRAIN_CSHIMS_H
#define CNN_TRAIN_CSHIMS_H

#include <mpi.h>
#include <hdf5.h>

// MARK: - MPI
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
int cnn_mpi_success(void);

// MARK: - HDF5
unsigned cnn_h5f_acc_rdonly(void);
unsigned cnn_h5f_acc_trunc(void);
hid_t cnn_h5p_default(void);
hid_t cnn_h5s_all(void);
hid_t cnn_h5t_native_float(void);
hid_t cnn_h5t_native_double(void);
hid_t cnn_h5t_native_int64(void);
hid_t cnn_h5t_native_int32(void);
hid_t cnn_h5t_native_uint8(void);
hid_t cnn_h5t_c_s1(void);
hid_t cnn_h5p_file_access(void);
hid_t cnn_h5p_dataset_create(void);
hid_t cnn_h5p_link_create(void);
/// Silences HDF5's default error stack printing; we report errors ourselves.
void cnn_h5_silence_errors(void);

#endif
