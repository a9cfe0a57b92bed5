// HDF5 constants that hdf5.h defines as macros over globals or casts, which Swift cannot
// import. Each is a function returning the macro's value.
#ifndef CNN_TRAIN_CHDF5_SHIMS_H
#define CNN_TRAIN_CHDF5_SHIMS_H

#include <hdf5.h>

unsigned cnn_h5f_acc_rdonly(void);
unsigned cnn_h5f_acc_trunc(void);
unsigned cnn_h5f_acc_rdwr(void);
hid_t cnn_h5p_default(void);
hid_t cnn_h5s_all(void);
hid_t cnn_h5t_native_float(void);
hid_t cnn_h5t_native_double(void);
hid_t cnn_h5t_native_int64(void);
hid_t cnn_h5t_native_uint8(void);
hid_t cnn_h5t_c_s1(void);
hid_t cnn_h5p_link_create(void);
hid_t cnn_h5p_file_access(void);
hid_t cnn_h5p_file_create(void);
/// Silences HDF5's default error stack printing; we report errors ourselves.
void cnn_h5_silence_errors(void);

#endif
