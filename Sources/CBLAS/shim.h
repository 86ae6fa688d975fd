// OpenBLAS's CBLAS interface (Debian: libopenblas-dev). openblas_get_num_threads /
// openblas_get_config are declared by OpenBLAS's cblas.h.
#include <cblas.h>
