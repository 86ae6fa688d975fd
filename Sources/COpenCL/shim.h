// OpenCL 1.2 API surface: PoCL, NVIDIA, AMD and Intel all provide it.
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
