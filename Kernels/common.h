// Shared definitions. The host prepends this file to every kernel file (embedded sources are strings, so
// `#include` cannot find it), followed by a `#line` directive naming the file itself.
//
// Conventions for every kernel:
// - Buffers are dense row-major float32; sizes and strides are `int` (the host refuses buffers of 2^31
//   elements or more).
// - Launch geometry: the host rounds the LAST dimension of the global size up to a multiple of the
//   work-group size, and every kernel guards that index (`if (i >= n) return;`). The other dimensions
//   are launched exactly (their work-group size divides them), so kernels do not test them: on CPU
//   OpenCL (PoCL) a possible early return inside the vectorised dimension 0 costs 3-4x in speed.
// - No -cl-fast-relaxed-math: results are compared with float64 references at 1e-6 abs + 1e-4 rel.
#ifndef ACAI_COMMON_H
#define ACAI_COMMON_H

#define ACAI_CAT_(a, b) a##b
#define ACAI_CAT(a, b) ACAI_CAT_(a, b)

// Vectors of width w (1, 2, 4, 8 or 16), where w is a literal or a -D macro.
#define VEC_TYPE(w) ACAI_CAT(VEC_TYPE_, w)
#define VEC_TYPE_1 float
#define VEC_TYPE_2 float2
#define VEC_TYPE_4 float4
#define VEC_TYPE_8 float8
#define VEC_TYPE_16 float16

// Loads and stores that need only float alignment.
#define VEC_LOAD(w, p) ACAI_CAT(VEC_LOAD_, w)(p)
#define VEC_LOAD_1(p) (*(p))
#define VEC_LOAD_2(p) vload2(0, (p))
#define VEC_LOAD_4(p) vload4(0, (p))
#define VEC_LOAD_8(p) vload8(0, (p))
#define VEC_LOAD_16(p) vload16(0, (p))

#define VEC_STORE(w, v, p) ACAI_CAT(VEC_STORE_, w)((v), (p))
#define VEC_STORE_1(v, p) (*(p) = (v))
#define VEC_STORE_2(v, p) vstore2((v), 0, (p))
#define VEC_STORE_4(v, p) vstore4((v), 0, (p))
#define VEC_STORE_8(v, p) vstore8((v), 0, (p))
#define VEC_STORE_16(v, p) vstore16((v), 0, (p))

// Horizontal sum of a vector (pairwise).
#define VEC_SUM(w, v) ACAI_CAT(VEC_SUM_, w)(v)
#define VEC_SUM_1(v) (v)
#define VEC_SUM_2(v) ((v).s0 + (v).s1)
#define VEC_SUM_4(v) (VEC_SUM_2((v).lo) + VEC_SUM_2((v).hi))
#define VEC_SUM_8(v) (VEC_SUM_4((v).lo) + VEC_SUM_4((v).hi))
#define VEC_SUM_16(v) (VEC_SUM_8((v).lo) + VEC_SUM_8((v).hi))

#endif
