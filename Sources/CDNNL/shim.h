// oneDNN's C API (2.x, as Debian's libdnnl-dev ships it; Debian has no pkg-config file
// for it, hence the explicit `link "dnnl"` in module.modulemap).
#include <dnnl.h>
#include <dnnl_debug.h>

// Debian's oneDNN runs on GNU OpenMP (libgomp). These two are all we need of omp.h,
// declared here rather than included because omp.h lives in GCC's private include dir.
void omp_set_num_threads(int);
int omp_get_max_threads(void);
