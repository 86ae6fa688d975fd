// LAPACK's C interface, LAPACKE (Debian: liblapacke-dev; the LAPACK routines underneath come from the
// system's liblapack.so.3, which OpenBLAS provides where it is installed). Only ACAICPU imports it.
#include <lapacke.h>
